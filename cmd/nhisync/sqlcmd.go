package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// sqlCmd groups helpers for sql systems.
func sqlCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sql",
		Short: "Helpers for sql systems (PostgreSQL change triggers)",
		Args:  unknownCommand,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "trigger SYSTEM",
		Short: "Print the SQL that makes a PostgreSQL table announce its changes on the system's notify channel",
		Long: `Print, for a sql system on PostgreSQL with notify: CHANNEL, the trigger
function and trigger that send each changed row's id on the channel. Run it
once as the table's owner (psql -f); nhisync serve then LISTENs and reads the
rows named. Nothing is run by this command; with -o json the SQL is the
value of "sql".`,
		Args: exactArgs(1, "SYSTEM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			sys, ok := cfg.Systems[args[0]]
			if !ok {
				return nhisync.Errorf(nhisync.EINVALID, "no system %q in %s; systems: %v", args[0], cfg.Path, cfg.SystemNames)
			}
			text, err := nsql.TriggerSQL(sys)
			if err != nil {
				return err
			}
			o := newOut(g.stdout, g.output)
			if o.json {
				return o.JSON(map[string]string{"system": sys.Name, "sql": text})
			}
			_, err = fmt.Fprint(g.stdout, text)
			return err
		},
	})
	return cmd
}
