package status_test

import (
	"fmt"
	"os"

	"github.com/pgbb/pgbb/harness/status"
)

func ExampleParse() {
	data, err := os.ReadFile("testdata/real/0003/completed_plain_tablespace_waldir")
	if err != nil {
		panic(err)
	}
	s, err := status.Parse(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.State, s.Durable, s.StartLSN, s.EndLSN)
	for _, d := range s.Directories {
		fmt.Println(d)
	}

	// The same file cut short is never completed.
	_, err = status.Parse(data[:len(data)-5])
	fmt.Println(err)
	// Output:
	// completed true 0/14000028 0/14000120
	// created /tmp/pgbbF/out3/plain
	// created /tmp/pgbbF/out3/plain_wal
	// created /tmp/pgbbF/out3/plain_ts
	// 21: last line does not end in a newline: the file was cut short (no CHECKSUM line)
}

func ExampleCheck() {
	r := status.Check("testdata/real/0002/failed_receiving")
	fmt.Println(r.Verdict, r.ExitCode, r.Final)
	fmt.Println(r.Summary)
	// Output:
	// failed 2 true
	// failed: error while receiving the backup
}
