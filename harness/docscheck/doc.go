// Package docscheck holds the test that keeps the project's documentation
// true: every make target, command-line flag, file name and exit code that
// README.md, docs/*.md and the other guides name must still exist. It has
// no code of its own; see docs_test.go.
package docscheck
