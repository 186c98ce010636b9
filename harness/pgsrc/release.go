// Package pgsrc obtains PostgreSQL source trees for the harness: the pinned
// releases taken from Debian source packages, or a user's own tree or
// tarball (PGSRC), extracted and patched with a series of patches.
package pgsrc

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Release pins one PostgreSQL release as Debian ships it. The orig tarball
// name and its sha256 are the pin: the Debian revision of the source package
// may move on, the upstream tarball inside it must not.
type Release struct {
	// Major is the PostgreSQL major version (18, 15).
	Major int
	// Version is the upstream release, e.g. "18.6".
	Version string
	// SourcePackage is the Debian source package that carries it.
	SourcePackage string
	// Suite is the Debian suite whose deb-src index lists the package.
	Suite string
	// DebianVersion is the source package version seen when pinning; it is
	// informational, the tarball checksum is what is verified.
	DebianVersion string
	// OrigTarball is the file name of the upstream tarball in the archive.
	OrigTarball string
	// SHA256 is the hex sha256 of OrigTarball.
	SHA256 string
	// TopDir is the single top-level directory inside OrigTarball.
	TopDir string
}

// releases is the one place where the PostgreSQL sources are pinned.
func releases() []Release {
	return []Release{
		{
			Major:         18,
			Version:       "18.6",
			SourcePackage: "postgresql-18",
			Suite:         "sid",
			DebianVersion: "18.6-3",
			OrigTarball:   "postgresql-18_18.6.orig.tar.bz2",
			SHA256:        "555610c24d53e4316da5b7d3fc25c279d96856d5e0e23ee308c328c5fa881d9f",
			TopDir:        "postgresql-18.6",
		},
		{
			Major:         15,
			Version:       "15.18",
			SourcePackage: "postgresql-15",
			Suite:         "bookworm",
			DebianVersion: "15.18-0+deb12u1",
			OrigTarball:   "postgresql-15_15.18.orig.tar.bz2",
			SHA256:        "11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4",
			TopDir:        "postgresql-15.18",
		},
	}
}

// Releases returns the pinned releases, newest first.
func Releases() []Release {
	r := releases()
	sort.Slice(r, func(i, j int) bool { return r[i].Major > r[j].Major })
	return r
}

// SupportedMajors returns the supported major versions as text, e.g. "18, 15".
func SupportedMajors() string {
	var s []string
	for _, r := range Releases() {
		s = append(s, strconv.Itoa(r.Major))
	}
	return strings.Join(s, ", ")
}

// Lookup returns the pinned release of a major version, or an error that
// lists the supported ones.
func Lookup(major int) (Release, error) {
	for _, r := range releases() {
		if r.Major == major {
			return r, nil
		}
	}
	return Release{}, fmt.Errorf("unsupported PostgreSQL version %d: supported versions are %s", major, SupportedMajors())
}

// ParseMajor parses a major version as given on a command line ("18",
// "15", also "18.6") and checks that it is supported.
func ParseMajor(s string) (int, error) {
	s = strings.TrimSpace(s)
	head, _, _ := strings.Cut(s, ".")
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0, fmt.Errorf("unsupported PostgreSQL version %q: supported versions are %s", s, SupportedMajors())
	}
	if _, err := Lookup(n); err != nil {
		return 0, err
	}
	return n, nil
}
