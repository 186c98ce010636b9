package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"

	"github.com/pgbb/pgbb/harness/build"
)

// makeTargets returns the targets the Makefile at root defines.
func makeTargets(t *testing.T, root string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(data), -1) {
		targets = append(targets, m[1])
	}
	return targets
}

var (
	// makeCall matches a make command in a step's script and its target.
	makeCall = regexp.MustCompile(`(?m)(?:^|[;&|(]|\s)make\s+(?:-\S+\s+)*([a-z][a-z0-9-]*)`)
	// ciCall matches .ci/crash and its first argument.
	ciCall = regexp.MustCompile(`\.ci/crash(?:[ \t]+(\S+))?`)
)

// workflowProblems parses a workflow and lists the make targets its steps
// call that targets does not hold, and the .ci/crash calls whose target is
// not one that script takes.
func workflowProblems(src []byte, targets []string) ([]string, error) {
	wf, errs := actionlint.Parse(src)
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse: %v", errs)
	}
	var problems []string
	for id, job := range wf.Jobs {
		for _, step := range job.Steps {
			run, ok := step.Exec.(*actionlint.ExecRun)
			if !ok || run.Run == nil {
				continue
			}
			script := run.Run.Value
			for _, m := range makeCall.FindAllStringSubmatch(script, -1) {
				if !slices.Contains(targets, m[1]) {
					problems = append(problems, fmt.Sprintf("job %s: make %s: no such target", id, m[1]))
				}
			}
			for _, m := range ciCall.FindAllStringSubmatch(script, -1) {
				target := m[1]
				if target == "" || target == "\\" || strings.Contains(target, "=") {
					target = "crash" // variables only: make crash
				}
				if target != "crash" && target != "crash-merge" || !slices.Contains(targets, target) {
					problems = append(problems, fmt.Sprintf("job %s: .ci/crash %s: not a target it runs", id, m[1]))
				}
			}
		}
	}
	slices.Sort(problems)
	return problems, nil
}

// TestWorkflows lints every workflow under .github/workflows with
// actionlint (its Go API; shellcheck and pyflakes are not run) and checks
// that every make target and .ci/crash target their steps call exists.
func TestWorkflows(t *testing.T) {
	root, err := build.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows in %s: %v", filepath.Join(root, ".github", "workflows"), err)
	}
	var out strings.Builder
	linter, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{WorkingDir: root})
	if err != nil {
		t.Fatal(err)
	}
	targets := makeTargets(t, root)
	for _, f := range files {
		errs, err := linter.LintFile(f, nil)
		if err != nil {
			t.Fatalf("actionlint %s: %v", f, err)
		}
		if len(errs) > 0 {
			t.Errorf("actionlint %s: %d problems:\n%s", f, len(errs), out.String())
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		problems, err := workflowProblems(src, targets)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", f, p)
		}
	}
	if st, err := os.Stat(filepath.Join(root, ".ci", "crash")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf(".ci/crash is not an executable file: %v", err)
	}
}

// TestWorkflowProblems checks that the check finds calls of targets that
// do not exist.
func TestWorkflowProblems(t *testing.T) {
	src := []byte(`on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: make build PG=18 && make -s nosuch
      - run: |
          .ci/crash SCENARIOS=x
          .ci/crash crash-merge MERGE=a,b
          .ci/crash test
`)
	got, err := workflowProblems(src, []string{"build", "crash", "crash-merge", "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"job a: .ci/crash test: not a target it runs", "job a: make nosuch: no such target"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}
