package wrapper

import (
	"archive/tar"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pgbb/pgbb/harness/status"
)

// BackupInfo is what a finished backup's own files say that the status
// file records and stock pg_basebackup does not print.
type BackupInfo struct {
	// SystemID is the system identifier; HaveSystemID says it is known.
	SystemID     uint64
	HaveSystemID bool
	// Started, StartLSN, Timeline, Ended, EndLSN are the manifest's WAL
	// range, for runs without WAL (-X none), where --verbose prints no
	// WAL start or end point.
	Started  bool
	StartLSN status.LSN
	Timeline uint32
	Ended    bool
	EndLSN   status.LSN
}

// ReadBackupInfo reads target's backup_manifest (its WAL range and, from
// PostgreSQL 17 on, the system identifier), then, if the system
// identifier is still unknown, global/pg_control (plain format) or the
// pg_control member of base.tar or base.tar.gz (tar format). What cannot
// be read stays unknown; err says why the system identifier is.
func ReadBackupInfo(target, format string) (BackupInfo, error) {
	var info BackupInfo
	merr := info.readManifest(filepath.Join(target, "backup_manifest"))
	if info.HaveSystemID {
		return info, nil
	}
	var err error
	if format == "plain" {
		err = info.readControl(filepath.Join(target, "global", "pg_control"))
	} else {
		err = info.readTarControl(target)
	}
	if err != nil {
		return info, errors.Join(merr, err)
	}
	return info, nil
}

// manifest is the part of backup_manifest read here.
type manifest struct {
	SystemIdentifier *uint64 `json:"System-Identifier"`
	WALRanges        []struct {
		Timeline uint32 `json:"Timeline"`
		StartLSN string `json:"Start-LSN"`
		EndLSN   string `json:"End-LSN"`
	} `json:"WAL-Ranges"`
}

func (info *BackupInfo) readManifest(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	var m manifest
	if err := json.NewDecoder(f).Decode(&m); err != nil {
		return fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.SystemIdentifier != nil {
		info.SystemID, info.HaveSystemID = *m.SystemIdentifier, true
	}
	if n := len(m.WALRanges); n > 0 {
		first, last := m.WALRanges[0], m.WALRanges[n-1]
		info.StartLSN, info.Started = parseStockLSN(first.StartLSN)
		info.Timeline = first.Timeline
		info.Started = info.Started && first.Timeline > 0
		info.EndLSN, info.Ended = parseStockLSN(last.EndLSN)
	}
	return nil
}

func (info *BackupInfo) readControl(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	defer f.Close()
	return info.control(f, path)
}

// control reads the system identifier, the first field of pg_control,
// in the byte order in which the next one, pg_control_version, is a
// version PostgreSQL used (between 1000 and 9999).
func (info *BackupInfo) control(r io.Reader, name string) error {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return fmt.Errorf("pg_control %s: %w", name, err)
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		if v := order.Uint32(head[8:]); v >= 1000 && v <= 9999 {
			info.SystemID, info.HaveSystemID = order.Uint64(head[:8]), true
			return nil
		}
	}
	return fmt.Errorf("pg_control %s: no known pg_control_version", name)
}

// readTarControl finds global/pg_control in target's base.tar or
// base.tar.gz (the last member: the whole archive is read).
func (info *BackupInfo) readTarControl(target string) error {
	for _, name := range []string{"base.tar", "base.tar.gz"} {
		path := filepath.Join(target, name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pg_control: %w", err)
		}
		defer f.Close()
		var r io.Reader = f
		if filepath.Ext(name) == ".gz" {
			z, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("pg_control: %s: %w", path, err)
			}
			r = z
		}
		return info.tarControl(tar.NewReader(r), path)
	}
	return errors.New("pg_control: no base.tar or base.tar.gz (other compressions are not read)")
}

func (info *BackupInfo) tarControl(tr *tar.Reader, path string) error {
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("pg_control: no global/pg_control in %s: %w", path, err)
		}
		if filepath.Clean(h.Name) == "global/pg_control" {
			return info.control(tr, path)
		}
	}
}
