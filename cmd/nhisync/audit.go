package main

import (
	"bufio"
	"encoding/base64"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/audit/ocsf"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The verifiable audit log: verify, proof, consistency, key, export",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(auditVerifyCmd(g), auditProofCmd(g), auditConsistencyCmd(g), auditKeyCmd(g), auditExportCmd(g))
	// An auditor may run these on a copy of the store without its keys:
	// they never create a missing signing key or HMAC secret.
	for _, c := range cmd.Commands() {
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			g.keepKeys = true
			return run(cmd, args)
		}
	}
	return cmd
}

// verifierKey returns the key to check checkpoints with: --key, else the
// configured signing key's verifier.
func verifierKey(a *app, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if _, err := os.Stat(a.cfg.SigningKey); err != nil {
		return "", nhisync.Errorf(nhisync.EINVALID, "no signing key at %s: nhisync creates it on the first sync, or pass --key VERIFIER", a.cfg.SigningKey)
	}
	s, err := audit.LoadOrCreateKey(a.cfg.SigningKey, "nhisync")
	if err != nil {
		return "", err
	}
	return s.VerifierKey(), nil
}

func auditVerifyCmd(g *globals) *cobra.Command {
	var key, against string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain, the Merkle tree and every checkpoint signature",
		Long: `Recompute the hash chain, the Merkle tree and every stored checkpoint's
signature and root. Every entry must be covered by a signed checkpoint (each
commit signs its own entries), time must never run backwards, and the columns
entries are indexed by must agree with what was hashed.

On its own, verify proves the store is consistent with the signing key: it
cannot see a log rolled back (tail and newer checkpoints deleted) or rewritten
and re-signed by someone holding the key. --against FILE also checks
checkpoints kept outside the store (the audit.publish file, or notes saved
from "audit proof"/the API; "-" reads stdin): the log must hold each one's
size and hash to its root, which catches both.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				vk, err := verifierKey(a, key)
				if err != nil {
					return err
				}
				var kept []*nhisync.Checkpoint
				if against != "" {
					if kept, err = readKept(against, vk); err != nil {
						return err
					}
				}
				rep, err := audit.VerifyAgainst(cmd.Context(), a.store, vk, kept)
				if err != nil {
					return err
				}
				var failure error
				if !rep.OK {
					failure = nhisync.Errorf(nhisync.ECONFLICT, "audit log verification FAILED: %s", rep.Problem)
				}
				if a.out.json {
					// One object: the report, with SPEC §6's error when it failed.
					out := struct {
						*audit.Report
						Error *errorJSON `json:"error,omitempty"`
					}{Report: rep}
					if failure != nil {
						out.Error = &errorJSON{Code: nhisync.ErrorCode(failure), Message: nhisync.ErrorMessage(failure)}
						failure = &reportedError{failure}
					}
					if err := a.out.JSON(out); err != nil {
						return err
					}
				} else if rep.OK {
					a.out.Printf("%s: %d entries chain, hash to root %s, and %d signed checkpoints verify (latest covers %d entries).\n",
						a.out.green("audit log OK"), rep.Entries, rep.Root, rep.Checkpoints, rep.Signed)
				}
				return failure
			})
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "verifier key to trust (signed-note form; default: the configured signing key's)")
	cmd.Flags().StringVar(&against, "against", "", "file of signed checkpoints kept outside the store (audit.publish), or - for stdin: the log must be consistent with each")
	return cmd
}

// readKept reads the checkpoints an auditor kept, checked against vk.
func readKept(path, vk string) ([]*nhisync.Checkpoint, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nhisync.Errorf(nhisync.EINVALID, "--against %s: %v", path, err)
		}
		defer f.Close()
		r = f
	}
	kept, err := audit.ReadCheckpoints(r, vk)
	if err != nil {
		return nil, nhisync.Errorf(nhisync.EINVALID, "--against %s: %s", path, nhisync.ErrorMessage(err))
	}
	return kept, nil
}

func auditProofCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "proof SEQ",
		Short: "Print an RFC 6962 inclusion proof of one entry in the latest signed checkpoint",
		Args:  exactArgs(1, "SEQ"),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || seq <= 0 {
				return usagef("SEQ must be a positive number, got %q", args[0])
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				p, err := audit.InclusionProof(cmd.Context(), a.store, seq, nil)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(p)
				}
				// Hashes in base64, as in -o json and audit verify (SPEC §4).
				a.out.Printf("entry %d (leaf %d) is in the tree of %d entries with root %s\n", p.Seq, p.LeafIndex, p.TreeSize, hashText(p.RootHash))
				a.out.Printf("leaf hash %s\n", hashText(p.LeafHash))
				for i, h := range p.Hashes {
					a.out.Printf("  proof[%d] %s\n", i, hashText(h))
				}
				a.out.Printf("\n%s", p.Checkpoint)
				return nil
			})
		},
	}
}

func auditConsistencyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "consistency OLD NEW",
		Short: "Prove the log of OLD entries is a prefix of the log of NEW entries",
		Args:  exactArgs(2, "OLD NEW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err1 := strconv.ParseInt(args[0], 10, 64)
			nw, err2 := strconv.ParseInt(args[1], 10, 64)
			if err1 != nil || err2 != nil {
				return usagef("OLD and NEW must be tree sizes (numbers)")
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				c, err := audit.ConsistencyProof(cmd.Context(), a.store, old, nw)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(c)
				}
				a.out.Printf("tree %d (root %s) is a prefix of tree %d (root %s)\n", c.OldSize, hashText(c.OldRoot), c.NewSize, hashText(c.NewRoot))
				for i, h := range c.Hashes {
					a.out.Printf("  proof[%d] %s\n", i, hashText(h))
				}
				return nil
			})
		},
	}
}

// hashText prints a hash as every audit command and SPEC §4's JSON do:
// standard base64.
func hashText(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

func auditKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the verifier key (signed-note form) that checks nhisync's checkpoints",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			s, err := audit.LoadOrCreateKey(cfg.SigningKey, "nhisync")
			if err != nil {
				return err
			}
			o := newOut(g.stdout, g.output)
			if o.json {
				return o.JSON(map[string]string{"verifier_key": s.VerifierKey(), "origin": s.Origin()})
			}
			o.Printf("%s\n", s.VerifierKey())
			return nil
		},
	}
}

func auditExportCmd(g *globals) *cobra.Command {
	var from, to int64
	var format string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit log as JSONL, one entry per line (--format ocsf: OCSF 1.x events for a SIEM)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "ocsf" {
				return usagef("--format must be jsonl (the audit entries) or ocsf (OCSF 1.x events), not %q", format)
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				w := bufio.NewWriter(g.stdout)
				export := audit.Export
				if format == "ocsf" {
					export = ocsf.Export
				}
				if err := export(cmd.Context(), a.store, w, from, to); err != nil {
					return err
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().Int64Var(&from, "from", 1, "first seq")
	cmd.Flags().Int64Var(&to, "to", 0, "stop before this seq (0: to the end)")
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl (the audit entries, hash included) or ocsf (OCSF 1.x Entity Management events)")
	return cmd
}
