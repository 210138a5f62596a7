//go:build linux

package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteResults writes the markdown results: one row per schedule with the
// sums over its runs, then one row per run, then examples of violations.
func WriteResults(w io.Writer, results []Result, header string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# mlog chaos results\n\n%s\n\n", header)
	b.WriteString("| schedule | acks | runs | acknowledged | lost | duplicated | reordered | divergent | other violations | runs with violations | unsettled | fault errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	type sum struct {
		acks                                                string
		runs, acked, lost, dup, reord, div, other, bad, uns int
		ferr                                                int
	}
	sums := map[string]*sum{}
	var order []string
	for _, r := range results {
		s := sums[r.Schedule]
		if s == nil {
			s = &sum{acks: r.Acks}
			sums[r.Schedule] = s
			order = append(order, r.Schedule)
		}
		s.runs++
		if !r.Settled {
			s.uns++
		}
		if r.FaultErr != nil {
			s.ferr++
		}
		if rep := r.Report; rep != nil {
			s.acked += rep.Acknowledged
			s.lost += rep.Lost
			s.dup += rep.Duplicated
			s.reord += rep.Reordered
			s.div += rep.Divergent
			s.other += rep.MultiValueOffset + rep.Vanished + rep.PollSkips
			if !reportOK(rep) {
				s.bad++
			}
		}
	}
	for _, name := range order {
		s := sums[name]
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n",
			name, s.acks, s.runs, s.acked, s.lost, s.dup, s.reord, s.div, s.other, s.bad, s.uns, s.ferr)
	}
	b.WriteString("\n## Runs\n\n")
	b.WriteString("| schedule | seed | acks | acknowledged | failed | unknown | lost | duplicated | multi-value | vanished | reordered | poll skips | divergent | final read | replica check | settled | longest ack gap | took |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|\n")
	for _, r := range results {
		rep := r.Report
		if rep == nil {
			rep = &Report{FinalRead: "no report"}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s | %v | %.1f s | %v |\n",
			r.Schedule, r.Seed, r.Acks, rep.Acknowledged, rep.Failed, rep.Unknown, rep.Lost, rep.Duplicated,
			rep.MultiValueOffset, rep.Vanished, rep.Reordered, rep.PollSkips, rep.Divergent,
			cell(rep.FinalRead), cell(rep.ReplicaCheck), r.Settled, float64(rep.LongestAckGapMs)/1000, r.Elapsed.Round(time.Second))
	}
	var ex strings.Builder
	for _, r := range results {
		if !r.Settled {
			fmt.Fprintf(&ex, "- %s seed %d: not settled: %v\n", r.Schedule, r.Seed, oneLine(r.SettleErr))
		}
		if r.Logs != "" {
			fmt.Fprintf(&ex, "- %s seed %d: node logs kept in %s\n", r.Schedule, r.Seed, r.Logs)
		}
		if r.FaultErr != nil {
			fmt.Fprintf(&ex, "- %s seed %d: fault error: %s\n", r.Schedule, r.Seed, cell(r.FaultErr.Error()))
		}
		if r.Report == nil || len(r.Report.Examples) == 0 {
			continue
		}
		for _, kind := range slices.Sorted(maps.Keys(r.Report.Examples)) {
			for i, e := range r.Report.Examples[kind] {
				if i == 5 {
					fmt.Fprintf(&ex, "- %s seed %d %s: … %d more\n", r.Schedule, r.Seed, kind, len(r.Report.Examples[kind])-5)
					break
				}
				fmt.Fprintf(&ex, "- %s seed %d %s: %s\n", r.Schedule, r.Seed, kind, e)
			}
		}
	}
	if ex.Len() > 0 {
		b.WriteString("\n## Examples\n\n")
		b.WriteString(ex.String())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reportOK is verify's verdict: no violations and a complete final read.
func reportOK(r *Report) bool { return r.OK() }

func oneLine(err error) string {
	if err == nil {
		return "harness error"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
