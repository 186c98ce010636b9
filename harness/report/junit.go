package report

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgbb/pgbb/harness/trial"
)

// JUnitFile is the name of the JUnit XML report in a run directory.
const JUnitFile = "junit.xml"

// junitSuites is the root of a JUnit XML report, as CI services read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

// junitSuite is one scenario.
type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

// junitCase is one fault plan of a scenario.
type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// junitFailure lists a plan's failing trials: the invariants they broke
// and the commands that replay them.
type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// JUnit returns the records as a JUnit XML report named name: a test suite
// per scenario and, in it, a test case per fault plan (the control runs
// under "none"), which fails when any of its trials broke an invariant.
// The failure's type lists the invariants broken, its text each failing
// trial with its message, its replay command and its kept directory.
func JUnit(recs []*trial.Record, name string) ([]byte, error) {
	root := junitSuites{Name: name}
	var total time.Duration
	for _, scen := range groupRecords(recs) {
		suite := junitSuite{Name: scen.name}
		var st time.Duration
		for _, p := range scen.plans {
			c, d := junitPlanCase(scen.name, p.name, p.recs)
			suite.Cases = append(suite.Cases, c)
			suite.Tests++
			if c.Failure != nil {
				suite.Failures++
			}
			st += d
		}
		suite.Time = seconds(st)
		root.Suites = append(root.Suites, suite)
		root.Tests += suite.Tests
		root.Failures += suite.Failures
		total += st
	}
	root.Time = seconds(total)
	data, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("junit report: %w", err)
	}
	return append([]byte(xml.Header), append(data, '\n')...), nil
}

// SaveJUnit writes the records' JUnit report (JUnit) into dir as
// junit.xml.
func SaveJUnit(dir string, recs []*trial.Record, name string) error {
	data, err := JUnit(recs, name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, JUnitFile), data, 0o644); err != nil {
		return fmt.Errorf("save junit report: %w", err)
	}
	return nil
}

// junitPlanCase makes the test case of one scenario's plan and returns it
// with the trials' total time.
func junitPlanCase(scen, plan string, recs []*trial.Record) (junitCase, time.Duration) {
	c := junitCase{Name: plan, Classname: scen}
	var d time.Duration
	var failed []*trial.Record
	counts := map[string]int{}
	for _, r := range recs {
		d += r.Elapsed
		counts[Outcome(r)]++
		if len(r.Violations) > 0 {
			failed = append(failed, r)
		}
	}
	c.Time = seconds(d)
	var out []string
	for _, o := range Outcomes() {
		if counts[o] > 0 {
			out = append(out, fmt.Sprintf("%s %d", o, counts[o]))
		}
	}
	c.SystemOut = fmt.Sprintf("%d trials: %s", len(recs), strings.Join(out, ", "))
	if len(failed) > 0 {
		c.Failure = junitFailureOf(failed, len(recs))
	}
	return c, d
}

// junitFailureOf describes the failing trials of a plan, of total trials.
func junitFailureOf(failed []*trial.Record, total int) *junitFailure {
	var invs []string
	seen := map[string]bool{}
	var b strings.Builder
	for _, r := range failed {
		for _, v := range r.Violations {
			if !seen[v.Invariant] {
				seen[v.Invariant] = true
				invs = append(invs, v.Invariant)
			}
			fmt.Fprintf(&b, "%s: %s: %s\n", r.ID, v.Invariant, v.Message)
		}
		if r.Replay != "" {
			fmt.Fprintf(&b, "    replay: %s\n", r.Replay)
		}
		switch {
		case r.Dir != "":
			fmt.Fprintf(&b, "    kept:   %s\n", r.Dir)
		case Dropped(r):
			fmt.Fprintf(&b, "    kept:   no (over -keep-failing for this invariant and plan)\n")
		}
	}
	sort.Strings(invs)
	return &junitFailure{
		Message: fmt.Sprintf("%d of %d trials broke invariants: %s", len(failed), total, strings.Join(invs, ", ")),
		Type:    strings.Join(invs, ","),
		Text:    b.String(),
	}
}

// scenarioRecords are one scenario's records, by plan.
type scenarioRecords struct {
	name  string
	plans []planRecords
}

type planRecords struct {
	name string
	recs []*trial.Record
}

// groupRecords groups records by scenario (by name) and plan (the control
// plan none first, then by name), each group's records by id.
func groupRecords(recs []*trial.Record) []scenarioRecords {
	by := map[string]map[string][]*trial.Record{}
	for _, r := range recs {
		if by[r.Scenario] == nil {
			by[r.Scenario] = map[string][]*trial.Record{}
		}
		by[r.Scenario][r.Plan] = append(by[r.Scenario][r.Plan], r)
	}
	var out []scenarioRecords
	for scen, plans := range by {
		s := scenarioRecords{name: scen}
		for plan, rs := range plans {
			sort.Slice(rs, func(i, j int) bool { return idLess(rs[i].ID, rs[j].ID) })
			s.plans = append(s.plans, planRecords{plan, rs})
		}
		sort.Slice(s.plans, func(i, j int) bool { return planOrder(s.plans[i].name) < planOrder(s.plans[j].name) })
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// idLess orders trial ids: by their text, except that numbered trials of
// one scenario go by number.
func idLess(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, '/'), strings.LastIndexByte(b, '/')
	if ia >= 0 && ib >= 0 && a[:ia] == b[:ib] {
		na, ea := strconv.Atoi(a[ia+1:])
		nb, eb := strconv.Atoi(b[ib+1:])
		if ea == nil && eb == nil {
			return na < nb
		}
	}
	return a < b
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
