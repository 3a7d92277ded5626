package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// machine says where a run was measured.
type machine struct {
	CPU     string
	Cores   int
	Go      string
	OS      string
	Load    string // the 1-, 5- and 15-minute load averages at the start
	MemInfo string // total memory
}

func machineNow() machine {
	m := machine{CPU: "unknown CPU", Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")), "%d", &kb)
				m.MemInfo = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return m
}

// printMarkdown prints the results as the README's table: one row per N.
func printMarkdown(w io.Writer, m machine, results []*result) {
	fmt.Fprintf(w, "%s, %d cores, %s RAM; %s %s; load average at start %s.\n\n", m.CPU, m.Cores, m.MemInfo, m.Go, m.OS, m.Load)
	fmt.Fprintln(w, "| N | floor | first | quiet | drift | quiet / floor | drift / floor | peak RSS first / quiet / drift | store | converged |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		sec := map[string]float64{}
		rss := map[string]int64{}
		for _, p := range r.Passes {
			sec[p.Name], rss[p.Name] = p.Seconds, p.PeakRSSBytes
		}
		fmt.Fprintf(w, "| %s | %.2f s | %.1f s | %.2f s | %.2f s | %.1f× | %.1f× | %d / %d / %d MiB | %d MiB | %v |\n",
			count(r.Records), r.FloorSeconds, sec["first"], sec["quiet"], sec["drift"],
			sec["quiet"]/r.FloorSeconds, sec["drift"]/r.FloorSeconds,
			rss["first"]>>20, rss["quiet"]>>20, rss["drift"]>>20, r.StoreBytes>>20, r.Converged)
	}
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(w, "\nDrift pass: %.0f%% of NHIs changed (%d) and %d idp records vanished; writes per pass %s.\n",
			r.Mix.Drift*100, r.Mix.Counts["drift"], r.Mix.Counts["vanished"], writesList(results))
	}
}

// writesList gives, per N, the writes of the first, quiet and drift passes.
func writesList(results []*result) string {
	var parts []string
	for _, r := range results {
		var w []string
		for _, p := range r.Passes {
			w = append(w, fmt.Sprint(p.Writes))
		}
		parts = append(parts, count(r.Records)+": "+strings.Join(w, " / "))
	}
	return strings.Join(parts, "; ")
}

// count prints 100000 as 100k and 1000000 as 1M.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
