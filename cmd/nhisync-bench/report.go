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

// printMarkdown prints the results as the README's table: one row per N,
// each pass's and the floor's wall seconds with their CPU seconds (user +
// system) beside them, and the ratios by both, as wall time alone
// misleads on a shared machine. end is the
// machine after the runs (its load).
func printMarkdown(w io.Writer, m, end machine, results []*result) {
	fmt.Fprintf(w, "%s, %d cores, %s RAM; %s %s; load average %s at the start, %s at the end.\n\n", m.CPU, m.Cores, m.MemInfo, m.Go, m.OS, m.Load, end.Load)
	fmt.Fprintln(w, "| N | floor (cpu) | first (cpu) | quiet (cpu) | drift (cpu) | quiet / floor (cpu) | drift / floor (cpu) | peak RSS first / quiet / drift | written first / quiet / drift | store (per NHI) | converged |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		pass := map[string]passResult{}
		for _, p := range r.Passes {
			pass[p.Name] = p
		}
		first, quiet, drift := pass["first"], pass["quiet"], pass["drift"]
		fmt.Fprintf(w, "| %s | %.2f s (%.2f) | %.1f s (%.1f) | %.2f s (%.2f) | %.2f s (%.2f) | %.1f× (%.1f×) | %.1f× (%.1f×) | %d / %d / %d MiB | %d / %d / %d MiB | %d MiB (%.1f KB) | %v |\n",
			count(r.Records), r.FloorSeconds, r.FloorCPUSeconds, first.Seconds, first.CPUSeconds, quiet.Seconds, quiet.CPUSeconds, drift.Seconds, drift.CPUSeconds,
			quiet.Seconds/r.FloorSeconds, quiet.CPUSeconds/r.FloorCPUSeconds, drift.Seconds/r.FloorSeconds, drift.CPUSeconds/r.FloorCPUSeconds,
			first.PeakRSSBytes>>20, quiet.PeakRSSBytes>>20, drift.PeakRSSBytes>>20,
			first.WriteBytes>>20, quiet.WriteBytes>>20, drift.WriteBytes>>20,
			r.StoreBytes>>20, float64(r.StoreBytes)/float64(r.Records)/1000, r.Converged)
	}
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(w, "\nBefore the drift pass %.1f%% of the NHIs change and %.1f%% of the idp's records vanish; writes per pass (first / quiet / drift): %s.\n",
			r.Mix.Drift*100, r.Mix.Vanished*100, perPass(results, func(p passResult) string { return fmt.Sprint(p.Writes) }, ""))
		fmt.Fprintf(w, "CPU time the host gave to others while this machine wanted to run (steal, summed over the CPUs), first / quiet / drift: %s.\n", perPass(results, func(p passResult) string { return fmt.Sprintf("%.1f", p.StealSeconds) }, " s"))
		fmt.Fprintln(w)
	}
	for _, r := range results {
		fmt.Fprintln(w, verdictLine(r))
	}
}

// perPass gives, per N, one figure of each pass (first / quiet / drift),
// as figure prints it, then unit.
func perPass(results []*result, figure func(passResult) string, unit string) string {
	var parts []string
	for _, r := range results {
		var f []string
		for _, p := range r.Passes {
			f = append(f, figure(p))
		}
		parts = append(parts, count(r.Records)+": "+strings.Join(f, " / ")+unit)
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
