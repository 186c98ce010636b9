"""Remake the known-bad variants.

Usage: make_variants.py PG18_TREE OUT_DIR [NAME...]

PG18_TREE is a git checkout of the 18.6 release tree whose HEAD has the series
of patches/pg18 applied as commits (0001-0007); each variant becomes one
commit on a branch bad-NAME and one patch, numbered after the series (0008),
in OUT_DIR/NAME.  Given NAMEs, only those variants are remade; otherwise
every one is, and a directory of OUT_DIR holding only KNOWN-BAD patches
that is no longer a variant is removed.
"""
import subprocess, os, sys
tree = sys.argv[1]
out = os.path.abspath(sys.argv[2])
pbc = 'src/bin/pg_basebackup/pg_basebackup.c'
fu = 'src/common/file_utils.c'
# The number of the variant's patch: the one after the series's last.
START = 8
FINAL = '''	if (status_path != NULL)
	{
		status_phase = "finishing";
		status_failing = false;
		if (!write_backup_status("completed", xlogend, NULL, do_sync))
		{
			if (unlink(status_path) != 0 && errno != ENOENT)
				pg_log_warning("could not remove file \\"%s\\": %m",
							   status_path);
			pg_log_warning("the backup is complete, but the status file could not say so");
		}
	}
'''

def git(*a):
    return subprocess.check_output(['git', '-C', tree] + list(a)).decode()

def read(path=pbc):
    return open(os.path.join(tree, path)).read()

def edit(path, old, new, count=1):
    p = os.path.join(tree, path)
    s = open(p).read()
    assert s.count(old) == count, (path, old[:200], s.count(old))
    open(p, 'w').write(s.replace(old, new))

def cut(start, end, keep_end=False):
    """Remove the one piece of pg_basebackup.c from start up to end (end
    removed too unless keep_end)."""
    s = read()
    assert s.count(start) == 1, (start[:200], s.count(start))
    i = s.index(start)
    j = s.index(end, i) + (0 if keep_end else len(end))
    edit(pbc, s[i:j], '')

EARLY = FINAL[:-len('\t}\n')] + '''		status_claimed_completed = true;
	}
'''

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
    edit(pbc, '''	if (status_path == NULL || status_interval <= 0)
		return;''', '''	if (status_path == NULL || status_claimed_completed || status_interval <= 0)
		return;''')

def move_final_before(anchor):
    """Remove the final completed write and insert it before anchor."""
    claim_early()
    edit(pbc, FINAL, '')
    edit(pbc, anchor, EARLY + '\n' + anchor)

variants = {}

# The rename of the temporary status file in write_status_version().
RENAME = '''	if (rename(status_tmppath, status_path) != 0)
	{
		if (!quiet)
			pg_log_warning("could not rename file \\"%s\\" to \\"%s\\": %m",
						   status_tmppath, status_path);
		goto fail;
	}
'''
# The fsync of the temporary file before it.
FSYNC_TMP = '''	if (durable && fsync(fd) != 0)
	{
		if (!quiet)
			pg_log_warning("could not fsync file \\"%s\\": %m",
						   status_tmppath);
		goto fail;
	}
'''
# The fsync of the directory after it.
FSYNC_DIR_START = '''	if (durable)
	{
		bool		synced = true;
'''
FSYNC_DIR_END = '''		return synced;
	}
'''
# The first version of the status file, written in main() before anything
# that can fail.
FIRST_WRITE = '''		status_start_time = time(NULL);
		record_pid_identity();
		if (!write_backup_status("in progress", NULL, NULL, true) &&
			unlink(status_path) != 0 && errno != ENOENT)
		{
			pg_log_error("could not remove file \\"%s\\": %m", status_path);
			pg_log_error_detail("The status file could be neither written nor removed, so it would still describe an earlier run.");
			exit(1);
		}
		status_written = true;
'''

def v(name, subject, body, context=3):
    """A variant: context is the number of context lines of its patch's
    hunks (fewer where the lines around the change are likely to be
    reworded by a revision of the series)."""
    def deco(f):
        variants[name] = (subject, body, f, context)
        return f
    return deco

# The three "completed too early" variants move the final write earlier.
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
   'write_status_version() truncates and writes the status file itself\ninstead of a temporary file that it renames into place: a crash or kill\nin the middle leaves an empty or partial file.')
def _():
    s = read()
    start = s.index('''	fd = open(status_tmppath, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,''')
    end = s.index(RENAME, start) + len(RENAME)
    body = s[start:end].replace('status_tmppath', 'status_path')
    body = body.replace(RENAME.replace('status_tmppath', 'status_path'), '')
    edit(pbc, s[start:end], body)
    edit(pbc, '''fail:
	if (fd >= 0)
		(void) close(fd);
	(void) unlink(status_tmppath);
	return false;''', '''fail:
	if (fd >= 0)
		(void) close(fd);
	return false;''')

@v('no-fsync-tmp', 'Rename the status file without syncing it first',
   'write_status_version() renames the temporary status file into place\nwithout syncing it (the directory is still synced): after a power loss\nthe rename may survive while the contents do not.')
def _():
    edit(pbc, FSYNC_TMP, '')

@v('no-dir-fsync', 'Do not sync the directory after renaming the status file',
   'write_status_version() syncs the temporary status file and renames it,\nbut does not sync the directory: after a power loss the rename may be\nlost, and the previous version come back.')
def _():
    cut(FSYNC_DIR_START, FSYNC_DIR_END)

@v('ignore-sync-errors', 'Ignore errors of the final sync',
   'Errors met during the final sync are only a warning, as before 0001:\na file that could not be opened is never synced, yet the backup is\nreported as completed and durable.')
def _():
    edit(pbc, '''		if (sync_result != 0)
			exit(1);
''', '''		if (sync_result != 0)
			pg_log_warning("some files of the backup could not be synchronized to disk");
''')

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
		(void) write_backup_status("in progress", NULL, NULL, do_sync);''', '''	status_phase = phase;
	if (status_path != NULL &&
		!write_backup_status("in progress", NULL, NULL, do_sync))
		exit(1);''')
    edit(pbc, '''	(void) write_backup_status("in progress", NULL, NULL, do_sync);
}''', '''	if (!write_backup_status("in progress", NULL, NULL, do_sync))
		exit(1);
}''')

@v('readonly-fatal', 'Do not sync a read-only file through a read-only descriptor',
   'The fsync pass of the final sync no longer opens a file that it cannot\nopen for writing read-only, and, since 0001 made every error of the pass\nfatal, no longer skips it either: a file that is read-only in the source\n(a server key, say, of mode 0400) makes every plain-format backup of\nthat server fail after all its data has arrived.')
def _():
    edit(fu, '''	fd = open(fname, flags, 0);
#ifndef WIN32
	if (fd < 0 && errno == EACCES && !isdir && readonly_too)
	{
		fd = open(fname, PG_BINARY | O_RDONLY, 0);
		readonly = true;
	}
#endif
''', '''	fd = open(fname, flags, 0);
''')

@v('no-signal-handler', 'Leave SIGINT and SIGTERM to their default action',
   'No handler for SIGINT and SIGTERM is installed: a run stopped with\nSIGTERM (timeout, an orchestrator, kill PID) dies at once, its status\nfile still says "in progress", and its directories stay behind.')
def _():
    edit(pbc, '''		setup_cancel_handler_with_sigterm(interrupt_callback);
		status_start_time = time(NULL);''', '''		status_start_time = time(NULL);''')
    edit(pbc, '''	if (status_path == NULL)
		setup_cancel_handler_with_sigterm(interrupt_callback);
	SetCancelConn(conn);
	sync_cancel_flag = &CancelRequested;
''', '')
    # The handler is never written either (unused, it would draw a warning).
    cut('''/*
 * Called by the SIGINT and SIGTERM handler of fe_utils/cancel.c, after it''', '''		_exit(1);
#endif
}
''')

@v('nosync-claims-durable', 'Claim durability with --no-sync',
   'A completed backup taken with --no-sync says DURABLE: yes.')
def _():
    edit(pbc, '''append_status_line(&buf, "DURABLE", backup_synced ? "yes" : "no");''',
         '''append_status_line(&buf, "DURABLE", "yes");''')

@v('bad-checksum', 'Checksum the status file without its first line',
   'The CRC-32C covers the status file without its first byte, so that no\nreader accepts the file: every completed backup looks incomplete.')
def _():
    edit(pbc, '''	COMP_CRC32C(crc, buf.data, buf.len);''', '''	COMP_CRC32C(crc, buf.data + 1, buf.len - 1);''')

@v('no-tablespace-sync', 'Sync only the backup directory, not its tablespaces',
   'The final sync of a plain-format backup walks the backup directory\nwithout following the symbolic links in pg_tblspc (and pg_wal with\n--waldir), as the tar format\'s sync does: the files of the tablespaces\nare never synced, yet the backup is reported as completed and durable.')
def _():
    edit(pbc, '''			sync_result = sync_pgdata(basedir, serverVersion, sync_method,
									  true);''', '''			sync_result = sync_dir_recurse(basedir, sync_method);''')

@v('ignore-status-rename-error', 'Ignore a failed rename of the status file',
   'write_status_version() ignores the result of the rename of the\ntemporary status file: when the rename of the final version fails,\npg_basebackup takes the "completed" version as written, neither warns\nnor removes the status file, exits 0, and leaves the previous\n"in progress" version in place.')
def _():
    edit(pbc, RENAME, '''	(void) rename(status_tmppath, status_path);
''')

@v('first-write-late', 'Write the first status version once the target has been checked',
   'The first version of the status file is written where it used to be,\nafter the target directory has been checked (and created), so that it\nnames the directories at once.  The exit handler still writes "failed"\nonly when this run wrote a version: a run that fails before, such as a\nrerun, with the same --status-file, of a command that completed (its\ntarget is not empty), leaves the earlier run\'s "completed" standing.')
def _():
    cut('''	/*
	 * Say that a backup is in progress before doing anything that can fail.''',
        '''		status_written = true;
	}

''')
    edit(pbc, '''	/* Name the directories we created or filled, before data arrives. */
	if (status_path != NULL)
	{
		if (made_new_pgdata || found_existing_pgdata)
			record_status_dir(basedir, made_new_pgdata);
		if (made_new_xlogdir || found_existing_xlogdir)
			record_status_dir(xlog_dir, made_new_xlogdir);
		set_backup_status_phase("starting");
	}
''', '''	/*
	 * Say that a backup is in progress, and which directories it fills,
	 * before any data arrives.  An earlier run given the same status file
	 * may have left it saying "completed"; from here on it must no longer
	 * say so, so this version is made durable even with --no-sync.  If it
	 * cannot be written, we remove the old file instead.
	 */
	if (status_path != NULL)
	{
		if (made_new_pgdata || found_existing_pgdata)
			record_status_dir(basedir, made_new_pgdata);
		if (made_new_xlogdir || found_existing_xlogdir)
			record_status_dir(xlog_dir, made_new_xlogdir);
''' + FIRST_WRITE + '''	}
''')

@v('first-version-not-durable', 'Sync the first status version only when the backup is synced',
   'The first version of the status file is written with do_sync, like the\nothers, instead of always durably: with --no-sync, a power loss after the\nrun has started can bring back what an earlier run left at the same\nstatus path, "completed" included, or nothing at all.')
def _():
    edit(pbc, '''		if (!write_backup_status("in progress", NULL, NULL, true) &&''',
         '''		if (!write_backup_status("in progress", NULL, NULL, do_sync) &&''')

@v('no-pid-identity', 'Leave the boot ID and PID namespace out of the status file',
   'The boot ID and PID namespace are never recorded (record_pid_identity()\nis gone): the status file names the pid without the boot and PID\nnamespace it belongs to, and a reader in a container cannot tell that\nthe pid is not its own.')
def _():
    edit(pbc, '''		record_pid_identity();
''', '')
    cut('''/*
 * A pid names a process only within one PID namespace during one boot of''', '''					 "%llu", ticks);
		fclose(fp);
	}
}

''')

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

@v('bytes-received-stale', 'Keep the bytes received of the last periodic rewrite',
   'BYTES RECEIVED is taken when a periodic rewrite falls due and kept for the\nversions written at phase changes: once the data is in, the file says what\nhad arrived up to an interval earlier, not where the data ended.')
def _():
    edit(pbc, '''static uint64 totaldone;
''', '''static uint64 totaldone;
static uint64 status_bytes;
''')
    edit(pbc, '''		appendPQExpBuffer(&buf, "BYTES RECEIVED: " UINT64_FORMAT "\\n",
						  totaldone);''', '''		appendPQExpBuffer(&buf, "BYTES RECEIVED: " UINT64_FORMAT "\\n",
						  status_bytes);''')
    edit(pbc, '''	if (INSTR_TIME_GET_DOUBLE(elapsed) < status_interval)
		return;
	(void) write_backup_status("in progress", NULL, NULL, do_sync);''', '''	if (INSTR_TIME_GET_DOUBLE(elapsed) < status_interval)
		return;
	status_bytes = totaldone;
	(void) write_backup_status("in progress", NULL, NULL, do_sync);''')

only = sys.argv[3:]
base = git('rev-parse', 'HEAD').strip()
orig = git('rev-parse', '--abbrev-ref', 'HEAD').strip()
for name, (subject, body, f, context) in variants.items():
    if only and name not in only:
        continue
    git('checkout', '-q', '-B', 'bad-' + name, base)
    f()
    git('-c', 'user.name=pgbb', '-c', 'user.email=pgbb@example.org', 'commit', '-qa',
        '-m', 'KNOWN BAD: ' + subject + '\n\n' + body + '\n\nThis is a deliberate mistake, kept to prove that the harness catches it.\nNever apply it.')
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    git('format-patch', '-q', '--no-signature', '-U%d' % context, '--start-number', str(START),
        '-o', d, 'HEAD~1')
    print(name, sorted(os.listdir(d)))
git('checkout', '-q', orig)
if not only:
    for d in sorted(os.listdir(out)):
        p = os.path.join(out, d)
        if d in variants or not os.path.isdir(p):
            continue
        files = os.listdir(p)
        if files and all('-KNOWN-BAD-' in f and f.endswith('.patch') for f in files):
            for f in files:
                os.remove(os.path.join(p, f))
            os.rmdir(p)
            print(d, 'removed: no longer a variant')
