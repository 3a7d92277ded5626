package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
)

func checkCmd(g *globals) *cobra.Command {
	var connect bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the config; with --connect also read every system in full",
		Long: `Validate the config: every problem at once, with file:line and how to fix it.

With --connect, also open every system and read it in full, decoding every
record as a pass does: a file that is missing or cannot be parsed, a table
that cannot be queried or a server that cannot be reached is FAILED with the
cause (exit 1), never "reachable".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			o := newOut(g.stdout, g.output)
			type sysResult struct {
				Connector string `json:"connector"`
				OK        bool   `json:"ok"`
				Records   int    `json:"records"`
				Error     string `json:"error,omitempty"`
				// Capabilities, for connectors that tell them.
				Incremental       *bool  `json:"incremental,omitempty"`
				IncrementalNote   string `json:"incremental_note,omitempty"`
				ConditionalWrites *bool  `json:"conditional_writes,omitempty"`
				ConditionalNote   string `json:"conditional_note,omitempty"`
			}
			res := map[string]*sysResult{}
			failed := 0
			if connect {
				for _, name := range cfg.SystemNames {
					sys := cfg.Systems[name]
					r := &sysResult{Connector: sys.Connector, OK: true}
					res[name] = r
					d, _ := nhisync.LookupDriver(sys.Connector)
					c, err := d.Open(cmd.Context(), sys, cfg.Kinds[sys.Kind])
					if err == nil {
						if ch, ok := c.(nhisync.Checker); ok {
							err = ch.Check(cmd.Context())
						}
						// Reaching is not enough: a file it cannot decode
						// or a table it cannot query would fail every pass.
						// Read it all, as a pass does.
						if err == nil {
							err = c.Snapshot(cmd.Context(), func(nhisync.Observation) error {
								r.Records++
								return nil
							})
						}
						if ct, ok := c.(nhisync.CapabilityTeller); ok && err == nil {
							caps := ct.Capabilities(cmd.Context())
							r.Incremental, r.IncrementalNote = &caps.Incremental, caps.IncrementalNote
							r.ConditionalWrites, r.ConditionalNote = &caps.ConditionalWrites, caps.ConditionalNote
						}
						_ = c.Close()
					}
					if err != nil {
						r.OK, r.Error = false, nhisync.ErrorMessage(err)
						failed++
					}
				}
			}
			var failure error
			if failed > 0 {
				var names []string
				for _, name := range cfg.SystemNames {
					if r := res[name]; !r.OK {
						names = append(names, name)
					}
				}
				failure = nhisync.Errorf(nhisync.EUNAVAIL, "%d of %d systems could not be read: %s", failed, len(cfg.SystemNames), strings.Join(names, ", "))
			}
			if o.json {
				j := map[string]any{"ok": failed == 0, "config": cfg.Path, "kinds": cfg.KindNames, "systems": cfg.SystemNames, "connect": res}
				if failure != nil {
					j["error"] = errorJSON{Code: nhisync.ErrorCode(failure), Message: nhisync.ErrorMessage(failure)}
				}
				if err := o.JSON(j); err != nil {
					return err
				}
			} else {
				o.Printf("%s: %s — %d kinds, %d systems\n", o.green("config OK"), cfg.Path, len(cfg.KindNames), len(cfg.SystemNames))
				if connect {
					var rows [][]string
					for _, name := range cfg.SystemNames {
						r := res[name]
						state := fmt.Sprintf("read %d records", r.Records)
						if !r.OK {
							state = "FAILED"
						}
						rows = append(rows, []string{name, r.Connector, state})
					}
					o.StyledTable([]string{"system", "connector", "connect"}, rows, func(r, c int) string {
						if c == 2 && !res[rows[r][0]].OK {
							return ansiRed
						}
						return ""
					})
					for _, name := range cfg.SystemNames {
						if r := res[name]; !r.OK {
							o.Printf("%s %s: %s\n", o.red("FAILED"), name, r.Error)
						}
					}
					for _, name := range cfg.SystemNames {
						if r := res[name]; r.OK && r.Incremental != nil {
							o.Printf("%s: incremental reads: %s (%s); conditional writes: %s (%s)\n", name,
								yesNo(*r.Incremental), r.IncrementalNote, yesNo(*r.ConditionalWrites), r.ConditionalNote)
						}
					}
				}
			}
			if failure != nil {
				return &reportedError{failure}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&connect, "connect", false, "also open and read every system in full, as a pass does")
	return cmd
}

func initCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter nhisync.yaml",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.config
			if _, err := os.Stat(path); err == nil && !force {
				return nhisync.Errorf(nhisync.EINVALID, "%s already exists; edit it, or pass --force to replace it", path)
			}
			if dir := filepath.Dir(path); dir != "." {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("create %s: %w", dir, err)
				}
			}
			if err := os.WriteFile(path, config.Starter(), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			o := newOut(g.stdout, g.output)
			if o.json {
				return o.JSON(map[string]string{"config": path})
			}
			o.Printf("Wrote %s. Edit its systems, then run `nhisync check --connect` and `nhisync plan`.\n", path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
