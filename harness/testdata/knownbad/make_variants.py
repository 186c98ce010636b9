"""Remake the known-bad variants.

Usage: make_variants.py PG18_TREE OUT_DIR

PG18_TREE is a git checkout of the 18.6 release tree whose HEAD has the series
of patches/pg18 applied as commits; each variant becomes one commit on a
branch bad-NAME and one patch, numbered after the series, in OUT_DIR/NAME.
"""
import subprocess, os, sys, re
tree = sys.argv[1]
out = os.path.abspath(sys.argv[2])
pbc = 'src/bin/pg_basebackup/pg_basebackup.c'
FINAL = '''	if (status_path != NULL)
	{
		status_phase = "finishing";
		if (!write_backup_status("completed", xlogend, NULL, do_sync,
								 PG_LOG_ERROR))
			exit(1);
	}
'''

def git(*a):
    return subprocess.check_output(['git', '-C', tree] + list(a)).decode()

def edit(path, old, new, count=1):
    p = os.path.join(tree, path)
    s = open(p).read()
    assert s.count(old) == count, (path, old[:200], s.count(old))
    open(p, 'w').write(s.replace(old, new))

EARLY = FINAL.replace('''			exit(1);
	}
''', '''			exit(1);
		status_claimed_completed = true;
	}
''')

def claim_early():
    """Once "completed" is written early, later progress writes are skipped,
    as they would be by a developer who thought the backup was done."""
    edit(pbc, '''static const char *status_phase = "starting";
''', '''static const char *status_phase = "starting";
static bool status_claimed_completed = false;
''')
    edit(pbc, '''	status_phase = phase;
	if (status_path != NULL)''', '''	status_phase = phase;
	if (status_path != NULL && !status_claimed_completed)''')
    edit(pbc, '''	if (status_path == NULL || status_interval <= 0 ||''',
         '''	if (status_path == NULL || status_claimed_completed || status_interval <= 0 ||''')

def move_final_before(anchor):
    """Remove the final completed write and insert it before anchor."""
    claim_early()
    edit(pbc, FINAL, '')
    edit(pbc, anchor, EARLY + '\n' + anchor)

variants = {}

# The durable rename of the temporary status file in write_backup_status().
RENAME = '''		if (durable_rename(tmppath, status_path) != 0)
		{
			(void) unlink(tmppath);
			goto done;
		}'''

def v(name, subject, body):
    def deco(f):
        variants[name] = (subject, body, f)
        return f
    return deco

@v('status-before-sync', 'Write the completed status before syncing',
   'The status says "completed" before the data has been synced and the\nmanifest renamed: a crash or kill during the sync leaves a "completed"\nbackup that is not on disk, or has no backup_manifest.')
def _():
    move_final_before('''	/*
	 * Make data persistent on disk once backup is completed. For tar format''')

@v('status-before-wal-child', 'Write the completed status before the WAL streamer finished',
   'The status says "completed" before pg_basebackup waited for the WAL\nstreaming child: the WAL needed to make the backup consistent may not\nbe there yet.')
def _():
    claim_early()
    edit(pbc, FINAL, '')
    edit(pbc, '''	if (bgchild > 0)
	{
#ifndef WIN32
		int			status;''', EARLY + '''
	if (bgchild > 0)
	{
#ifndef WIN32
		int			status;''')

@v('status-before-manifest-rename', 'Write the completed status before renaming the manifest',
   'The status says "completed" after the sync but before backup_manifest.tmp\nis renamed to backup_manifest.')
def _():
    move_final_before('''	/*
	 * After synchronizing data to disk, perform a durable rename of''')

@v('status-in-place', 'Rewrite the status file in place',
   'The status file is truncated and written in place instead of through a\ntemporary file and a rename: a crash or kill in the middle leaves an\nempty or partial file.')
def _():
    edit(pbc, '''	snprintf(tmppath, sizeof(tmppath), "%s.tmp", status_path);
	fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,''', '''	snprintf(tmppath, sizeof(tmppath), "%s", status_path);
	fd = open(tmppath, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,''')
    s = open(os.path.join(tree, pbc)).read()
    start = s.index('''	if (durable)
	{
		/*
		 * durable_rename emits its own log message''')
    end = s.index('''	result = true;

done:''', start)
    edit(pbc, s[start:end], '''	if (durable && fsync_fname(status_path, false) != 0)
		goto done;
''')

@v('no-fsync-tmp', 'Rename the status file without syncing it first',
   'The temporary status file is renamed into place without being synced:\nafter a power loss the rename may survive while the contents do not.')
def _():
    edit(pbc, RENAME, RENAME.replace('''		if (durable_rename(tmppath, status_path) != 0)''', '''		if (rename(tmppath, status_path) != 0 ||
			fsync_parent_path(status_path) != 0)'''))

@v('no-dir-fsync', 'Do not sync the directory after renaming the status file',
   'The status file is synced and renamed, but the directory is not synced:\nafter a power loss the rename may be lost.')
def _():
    edit(pbc, RENAME, RENAME.replace('''		if (durable_rename(tmppath, status_path) != 0)''', '''		if (fsync_fname(tmppath, false) != 0 ||
			rename(tmppath, status_path) != 0)'''))

@v('ignore-sync-errors', 'Ignore errors of the final sync',
   'Errors met during the final sync are logged but ignored, as before\n0001: a file that could not be opened is never synced, yet the backup\nis reported as completed and durable.')
def _():
    edit(pbc, '''		if (sync_result < 0)
			pg_fatal("could not synchronize backup to disk");
''', '')
    edit(pbc, '''		backup_synced = (sync_result == 0);''', '''		backup_synced = true;''')

@v('stdout-claims-durable', 'Claim durability when writing to standard output',
   'With -D - nothing of the backup is synced by pg_basebackup, yet the\nsync step is skipped as if it had succeeded: a completed backup written\nto standard output says DURABLE: yes.')
def _():
    edit(pbc, '''	if (do_sync && backup_target == NULL && !writing_to_stdout)
	{
		int			sync_result;
''', '''	if (do_sync && backup_target == NULL)
	{
		int			sync_result = 0;
''')
    edit(pbc, '''		if (format == 't')
			sync_result = sync_dir_recurse(basedir, sync_method);
''', '''		if (format == 't')
		{
			if (!writing_to_stdout)
				sync_result = sync_dir_recurse(basedir, sync_method);
		}
''')

@v('progress-rewrite-fatal', 'Fail the backup when a progress rewrite fails',
   'A progress rewrite of the status file that cannot be written ends the\nbackup with an error: a status directory that becomes read-only, or a\nfull disk under it, aborts a backup that would otherwise succeed.')
def _():
    edit(pbc, '''	status_phase = phase;
	if (status_path != NULL)
		(void) write_backup_status("in progress", NULL, NULL, do_sync,
								   PG_LOG_WARNING);''', '''	status_phase = phase;
	if (status_path != NULL &&
		!write_backup_status("in progress", NULL, NULL, do_sync,
							 PG_LOG_ERROR))
		exit(1);''')
    edit(pbc, '''	(void) write_backup_status("in progress", NULL, NULL, do_sync,
							   PG_LOG_WARNING);
}''', '''	if (!write_backup_status("in progress", NULL, NULL, do_sync,
							 PG_LOG_ERROR))
		exit(1);
}''')

@v('readonly-claims-durable', 'Count a file skipped by the sync as synced',
   'Only a sync error clears backup_synced: a file the sync skipped because\nit could not be opened for writing (read-only in the source data\ndirectory) was never synced, yet the status says DURABLE: yes.')
def _():
    edit(pbc, '''		backup_synced = (sync_result == 0);''', '''		backup_synced = (sync_result >= 0);''')

@v('no-signal-handler', 'Leave SIGINT and SIGTERM to their default action',
   'No handler for SIGINT and SIGTERM is installed: a run stopped with\nSIGTERM (timeout, an orchestrator, kill PID) dies at once, its status\nfile still says "in progress", and its directories stay behind.')
def _():
    edit(pbc, '''	pqsignal(SIGINT, terminate_handler);
	pqsignal(SIGTERM, terminate_handler);
''', '')

@v('nosync-claims-durable', 'Claim durability with --no-sync',
   'A completed backup taken with --no-sync says DURABLE: yes.')
def _():
    edit(pbc, '''append_status_line(&buf, "DURABLE", backup_synced ? "yes" : "no");''',
         '''append_status_line(&buf, "DURABLE", "yes");''')

@v('bad-checksum', 'Checksum the status file without its first line',
   'The CRC-32C covers the status file without its first line, so that no\nreader accepts the file: every completed backup looks incomplete.')
def _():
    edit(pbc, '''	COMP_CRC32C(crc, buf.data, buf.len);''', '''	COMP_CRC32C(crc, buf.data + 1, buf.len - 1);''')

@v('no-tablespace-sync', 'Sync only the backup directory, not its tablespaces',
   'The final sync of a plain-format backup walks the backup directory\nwithout following the symbolic links in pg_tblspc (and pg_wal with\n--waldir), as the tar format\'s sync does: the files of the tablespaces\nare never synced, yet the backup is reported as completed and durable.')
def _():
    edit(pbc, '''			sync_result = sync_pgdata(basedir, serverVersion, sync_method,
									  true);''', '''			sync_result = sync_dir_recurse(basedir, sync_method);''')

@v('ignore-status-rename-error', 'Ignore a failed rename of the status file',
   'The result of durable_rename() of the temporary status file is ignored:\nwhen the rename fails, the run goes on, exits 0, and leaves the\nprevious status in place.')
def _():
    edit(pbc, RENAME, '''		(void) durable_rename(tmppath, status_path);''')

@v('failed-without-writing', 'Say "failed" also when this run never wrote the status file',
   'The exit handler that rewrites the status file as "failed" no longer\nchecks that this run wrote the file, "to cover every error": a retry\ngiven the same status file and the directory of a completed backup\nfails on the non-empty directory, as it must, and then rewrites that\nbackup\'s status as failed.')
def _():
    edit(pbc, '''	if (success || in_log_streamer || !status_written)
		return;''', '''	if (success || in_log_streamer || status_path == NULL)
		return;''')

@v('no-pid-identity', 'Leave the boot ID and PID namespace out of the status file',
   'record_pid_identity() is no longer called: the status file names the pid\nwithout the boot and PID namespace it belongs to, and a reader in a\ncontainer cannot tell that the pid is not its own.')
def _():
    edit(pbc, '''		record_pid_identity();
''', '')

@v('rewrite-only-with-progress', 'Rewrite the status file from progress_report()',
   'The periodic rewrite of the status file is called from progress_report(),\nwhere the progress of the backup is known, instead of wherever data\narrives; but progress_report() returns at once without -P/--progress, so\nthat without it the file is not rewritten while data arrives and a\nreader takes a healthy run for a stalled one.')
def _():
    edit(pbc, '''
	update_backup_status();

	/* Each CopyData message begins with a type byte. */''', '''
	/* Each CopyData message begins with a type byte. */''')
    edit(pbc, '''	progress_report(state->tablespacenum, false, false);
	update_backup_status();
}''', '''	progress_report(state->tablespacenum, false, false);
}''')
    edit(pbc, '''	if (!showprogress)
		return;

	now = time(NULL);''', '''	if (!showprogress)
		return;

	update_backup_status();

	now = time(NULL);''')

@v('bytes-received-is-total', 'Report the size estimate as the bytes received',
   'The status file\'s BYTES RECEIVED is written from the server\'s estimate of\nthe backup\'s size, and BYTES TOTAL from the bytes received (the two\nvariables swapped): a reader sees every run as nearly done from its\nfirst update.')
def _():
    edit(pbc, '''		appendPQExpBuffer(&buf, "BYTES RECEIVED: " UINT64_FORMAT "\\n",
						  totaldone);
		if (totalsize_kb > 0)
			appendPQExpBuffer(&buf, "BYTES TOTAL: " UINT64_FORMAT "\\n",
							  totalsize_kb * 1024);''', '''		appendPQExpBuffer(&buf, "BYTES RECEIVED: " UINT64_FORMAT "\\n",
						  totalsize_kb * 1024);
		if (totalsize_kb > 0)
			appendPQExpBuffer(&buf, "BYTES TOTAL: " UINT64_FORMAT "\\n",
							  totaldone);''')

base = git('rev-parse', 'HEAD').strip()
orig = git('rev-parse', '--abbrev-ref', 'HEAD').strip()
for name, (subject, body, f) in variants.items():
    git('checkout', '-q', '-B', 'bad-' + name, base)
    f()
    git('-c', 'user.name=pgbb', '-c', 'user.email=pgbb@example.org', 'commit', '-qa',
        '-m', 'KNOWN BAD: ' + subject + '\n\n' + body + '\n\nThis is a deliberate mistake, kept to prove that the harness catches it.\nNever apply it.')
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    git('format-patch', '-q', '--no-signature', '--start-number', '4', '-o', d, 'HEAD~1')
    print(name, sorted(os.listdir(d)))
git('checkout', '-q', orig)
