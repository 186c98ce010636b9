package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/pgbb/pgbb/harness/trial"
)

// Coverage says what a campaign's trials exercised beyond their fault
// plans, so that a clean summary can be told from one that checked little.
type Coverage struct {
	// Tablespaces and WALDir count trials given -T mappings and --waldir;
	// Removed those after which --remove-if-dead removed what the run
	// left, Retried those whose retry ran.
	Tablespaces int `json:"tablespaces"`
	WALDir      int `json:"waldir"`
	Removed     int `json:"removed"`
	Retried     int `json:"retried"`
	// Zones counts trials per time zone pg_basebackup ran in,
	// ReaderZones per time zone the built pgbb-status ran in.
	Zones       map[string]int `json:"zones"`
	ReaderZones map[string]int `json:"reader_zones,omitempty"`
	// OtherUser counts trials judged also by pgbb-status run as another
	// OS user.
	OtherUser int `json:"other_user"`
	// OtherNamespace counts trials judged also by pgbb-status run in a
	// PID namespace of its own; NamespaceErrors those where it could not
	// be run there.
	OtherNamespace  int `json:"other_namespace"`
	NamespaceErrors int `json:"namespace_errors,omitempty"`
	// NotCovered counts, per reader that did not run and why (for
	// example "from another PID namespace: unshare ..."), the trials whose
	// stop plan went without it.
	NotCovered map[string]int `json:"not_covered,omitempty"`
	// Progress counts trials whose progress lines were judged against
	// the server (BYTES RECEIVED; cadence when the run was long enough),
	// ProgressVersions the versions judged.
	Progress         int `json:"progress"`
	ProgressVersions int `json:"progress_versions"`
}

// cover adds a record to the coverage.
func (c *Coverage) cover(r *trial.Record) {
	if slices.ContainsFunc(r.Args, func(a string) bool { return strings.HasPrefix(a, "--tablespace-mapping=") }) {
		c.Tablespaces++
	}
	if slices.ContainsFunc(r.Args, func(a string) bool { return strings.HasPrefix(a, "--waldir=") }) {
		c.WALDir++
	}
	if r.Cleanup != nil {
		if r.Cleanup.Exit == 0 && r.Cleanup.Refused == "" && r.Cleanup.Error == "" {
			c.Removed++
		}
		if r.Cleanup.RetryExit >= 0 {
			c.Retried++
		}
	}
	if r.TZ != "" {
		if c.Zones == nil {
			c.Zones = map[string]int{}
		}
		c.Zones[r.TZ]++
	}
	if r.ReaderTZ != "" {
		if c.ReaderZones == nil {
			c.ReaderZones = map[string]int{}
		}
		c.ReaderZones[r.ReaderTZ]++
	}
	if r.Fault.Stop != nil && r.Fault.Stop.OtherUser != nil {
		c.OtherUser++
	}
	if r.Fault.Stop != nil && r.Fault.Stop.OtherNamespace != nil {
		if r.Fault.Stop.OtherNamespace.Error == "" {
			c.OtherNamespace++
		} else {
			c.NamespaceErrors++
		}
	}
	if r.Fault.Stop != nil && r.Fault.Stop.NotRun != nil {
		c.notCovered("as another OS user", r.Fault.Stop.NotRun.OtherUser)
		c.notCovered("from another PID namespace", r.Fault.Stop.NotRun.OtherNamespace)
	}
	if r.ProgressJudged > 0 {
		c.Progress++
		c.ProgressVersions += r.ProgressJudged
	}
}

// notCovered counts a trial whose reader did not run as what says (as
// another user, from another namespace), for the reason why ("" if it
// did).
func (c *Coverage) notCovered(what, why string) {
	if why == "" {
		return
	}
	if c.NotCovered == nil {
		c.NotCovered = map[string]int{}
	}
	c.NotCovered[what+": "+why]++
}

// WriteCoverage prints the coverage in a few lines, and a line for each
// reader the stop plan went without, with the reason.
func WriteCoverage(w io.Writer, c Coverage) {
	zones := func(m map[string]int) string {
		var zs []string
		for z, n := range m {
			zs = append(zs, fmt.Sprintf("%s %d", z, n))
		}
		slices.Sort(zs)
		if len(zs) == 0 {
			return "none"
		}
		return strings.Join(zs, ", ")
	}
	fmt.Fprintf(w, "covered: %d trials with tablespaces, %d with --waldir; --remove-if-dead removed after %d, a retry ran after %d\n",
		c.Tablespaces, c.WALDir, c.Removed, c.Retried)
	fmt.Fprintf(w, "covered: time zones of pg_basebackup: %s; of the built pgbb-status: %s\n", zones(c.Zones), zones(c.ReaderZones))
	fmt.Fprintf(w, "covered: %d trials judged also as another OS user, %d also from another PID namespace", c.OtherUser, c.OtherNamespace)
	if c.NamespaceErrors > 0 {
		fmt.Fprintf(w, " (%d could not be)", c.NamespaceErrors)
	}
	fmt.Fprintf(w, "; %d with progress lines judged against the server (%d versions)\n", c.Progress, c.ProgressVersions)
	for _, g := range slices.Sorted(maps.Keys(c.NotCovered)) {
		fmt.Fprintf(w, "not covered in %d trials: pgbb-status %s\n", c.NotCovered[g], g)
	}
}
