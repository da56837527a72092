// Package filestore is the file-system implementation of the Mail Storage
// Access API (package store). It runs on Linux (it uses getdents, fstatat,
// renameat2 and /proc).
//
// # Layout
//
//	<mailroot>/                              the mail root; Open creates it
//	<mailroot>/.pop3/key                     the store key: 32 random octets, hex, mode 0600
//	<mailroot>/.pop3/tmp/                    messages and keys being written
//	<mailroot>/.pop3/trash/                  folders being deleted
//	<mailroot>/.pop3/queue/                  the SMTP queue (package store/queue)
//	<mailroot>/.pop3/tls/                    the self-signed certificate pair, when none is configured
//	<mailroot>/Badmail/                      undeliverable mail whose NDR could not be sent, with .reason files
//	<mailroot>/<domain>/                     one folder per domain
//	<mailroot>/<domain>/domain.locked        present while the administrator locks the domain
//	<mailroot>/<domain>/P3_<mailbox>.mbx/    one folder per mailbox
//	    lock                                 the mailbox is free ...
//	    kcol                                 ... or held: by a session or the administrator
//	    quota                                the quota in octets, decimal text; missing or 0: none
//	    passwd                               password-file credentials (JSON), when set
//	    P3_<26 digits>.eml                   one file per message, CRLF line endings
//	    P3_<26 digits>-<hex>.eml             an imported message and its old UIDL
//
// A domain name never starts with '.', so .pop3 cannot collide with a
// domain, and Badmail has upper-case letters, which no canonical domain has; a mailbox folder is always P3_<name>.mbx, so domain.locked cannot
// collide with a mailbox. Every domain and mailbox name is lower-cased and
// checked by store.ValidateDomain / store.ValidateMailbox before it is
// joined to a path: no name can contain '/', NUL, or be "." or "..", so no
// path leaves the mail root, and a refused name touches nothing on disk.
// Files are opened with O_NOFOLLOW, mailbox folders are checked with lstat:
// a symbolic link planted in the store is never followed.
//
// Folders are created 0700 and files 0600: run pop3d and pop3ctl as the
// same user.
//
// # Messages
//
// A message's name is P3_ + 26 digits + .eml (package store/uid): the UTC time of delivery to
// the millisecond (YYYYMMDDhhmmssmmm, 17 digits), a 4-digit counter and the
// 5-digit node number (Options.Node). The 26 digits are the message's UID
// (its UIDL, RFC 1939 section 7) and sort in delivery order. Within a process
// the names only grow, even when the clock steps back; two processes of the
// same node (pop3d and a pop3ctl deliver) that pick the same name are told
// apart by link(2), which never replaces a file: the loser takes the next
// counter. Servers sharing a store must have different node numbers. A
// name can only come back if the clock of a node steps back across a
// restart to a millisecond in which that node delivered a message that has
// since been deleted.
//
// Deliver writes the message to .pop3/tmp (the same file system as the
// mailboxes), through a buffer, never holding the message in memory. Line
// endings are normalised for RFC 1939's octet counts (package store/crlf): a bare LF becomes
// CRLF, a bare CR is kept as it is, and a non-empty message that does not
// end with a line ending gets CRLF appended (a final bare CR becomes CRLF).
// A message in which no line begins with '.', or one over 256 KiB in which
// at most 128 do, gets the extended attribute user.pop3.dots (its size,
// modification time and the offsets of those lines) before the fsync (a
// smaller message is read with its reply, and offsets would cost it an
// attribute block of its own on ext4); a message file is not to be edited in
// place. Its reader is then a store.WireFile, which a POP3 server sends
// with sendfile(2), stuffing those lines as it goes (wire.go). The mark of
// earlier versions, user.pop3.nodots, still counts.
// The temporary file is fsynced, checked against the quota, linked to its
// name in the mailbox folder (link never replaces), unlinked from tmp, and
// the mailbox folder is fsynced before Deliver returns. A reader never sees
// a partial message; a process killed while delivering leaves only a file in
// .pop3/tmp, which Open removes once it is older than Options.TmpMaxAge.
//
// Stage and Publish (store.StagedDelivery, what the SMTP delivery service
// uses) split Deliver in two: Stage writes and checks the copy the same
// way, renames it to .pop3/tmp/staged.<key> and fsyncs tmp; Publish
// renames that file to its name in the mailbox folder and fsyncs the
// folder. The caller records the copy between the two, so a crash never
// leaves a visible copy without its record (which a session could
// retrieve and delete before a recovery looked for it, and get a second
// copy). Clean leaves staged files alone.
//
// Delivery ignores the session lock and both administrator's locks: a
// message delivered while a session holds the mailbox appears in the next
// session, because a session works on the snapshot it listed at open.
// Snapshot lists and reads a mailbox without its lock (the delivery
// service's check for a copy that landed before a crash).
//
// # Imported messages
//
// An imported message (Import, store.Importer) keeps the UIDL its old server
// gave it. The UIDL is part of the file name, in lower-case hexadecimal
// after a '-': P3_<26 digits>-<hex>.eml, so it is linked, fsynced and
// deleted together with the message and listing a mailbox still reads no
// file. The 26 digits are a fresh name like a delivered message's, so
// messages imported one after another sort in the order they were imported
// (the old server's order) and before later deliveries; MessageInfo.UID is
// the UIDL, which is what POP3's UIDL answers. A name whose hex part is not
// the canonical lower-case form of a UIDL that RFC 1939 allows (1 to 70
// characters in 0x21..0x7E) is not a message name and is ignored.
//
// UIDs are unique within a mailbox: Import takes the mailbox folder's flock
// (as password changes do), lists the folder's UIDs and refuses a UIDL
// already there with store.ErrDuplicateUIDL, storing nothing; it also
// skips a fresh name equal to an imported 26-digit UIDL. Deliver does not
// check imported UIDLs: its fresh names are later than any time an old
// server's 26-digit UIDL (the Windows POP3 Service's names) can carry.
// Import applies neither the quota nor the message size limit.
//
// # Quotas
//
// The quota file holds the mailbox's quota in octets; missing or 0 means
// Options.DomainQuotaDefault (0: none). Quota and MailboxInfo.Quota report
// that effective quota. Deliver refuses with store.ErrOverQuota when the
// octets stored plus the new message's size would exceed it. Usage is
// computed by listing the folder (getdents + fstatat, no file read), which
// is correct across processes and servers without a shared counter.
// Deliveries of one process into one mailbox check and store one at a
// time; deliveries of different processes or servers racing into one
// mailbox may both pass the check, so a quota can be overrun by at most
// the messages they deliver at the same instant.
//
// # Locks
//
// A mailbox's session lock is a folder in the mailbox folder, and its name
// says its state:
//
//	lock                          free
//	kcol.<token>_<node>_<pid>_<start>_<ms>_<boot>_<host>
//	                              held by a session: a random token, the
//	                              holder's node, pid, process start time
//	                              (/proc/<pid>/stat field 22), the time it
//	                              was taken (Unix ms), the boot id and host
//	kcol                          the administrator's lock (a file or folder)
//	lock.done.<token>             free, with deletions a Commit left to remove
//
// The lock folder holds an owner file (the owner string the session gave,
// overwritten in place, for MailboxInfo.Owner) and, during a Commit, the
// messages being deleted.
//
// Taking the lock is one rename of lock to kcol.<holder>: of racing
// sessions on any server exactly one wins, and a rename needs no new disk
// space, so users can log in, DELE and QUIT on a full file system and so
// free space. When lock is missing the folder is listed: kcol refuses with
// store.ErrMailboxLocked, a lock.done.<token> is taken by renaming it (its
// leftover messages are removed), a live holder refuses with
// store.ErrMailboxInUse and a stale one is taken over by renaming its
// folder to our own name. A holder is stale when it comes from this
// machine (same host name and boot id) and its pid is not running or runs
// a process with another start time, when it comes from this host before
// its last reboot, or when the later of the time in its name and its
// folder's mtime is older than the lease (Options.LockLease, the
// lock_lease setting, store.DefaultLockLease by default). The server
// renews the lease of every open session (MailboxSession.Refresh sets the
// folder's mtime) every third of the lease, idle or streaming, from the
// engine's tick: a live session is never taken over, and a dead or frozen
// machine's users get their mailboxes back a lease after its last renewal.
//
// Fencing. A take-over renames the holder's folder, so every later step of
// the old holder by that name fails: Refresh and Open (RETR, TOP) report
// store.ErrLockLost, and Commit is atomic with respect to a take-over:
//
//  1. each deleted message is renamed into the lock folder by its path,
//     which fails once the folder was renamed away;
//  2. the lock folder is fsynced and renamed to lock.done.<token>: the
//     commit point, one rename that fails if the lock was taken over;
//  3. the messages are removed and lock.done.<token> becomes lock.
//
// A taker puts back the messages it finds in the folder it took over
// (deletions that did not reach their commit point), so a session that
// lost its lock deletes nothing, and its QUIT answers
// -ERR [IN-USE]. Releasing (Close) is the one rename of kcol.<holder> back
// to lock, which fails harmlessly when the lock was taken over.
//
// Open looks at the lock folder (an lstat) only once half a lease has
// passed since the lock was taken or last renewed on time: no server takes
// a lock over sooner (heldLock.oursWithinLease says why), and a session
// renews every third of a lease, so a RETR costs no lock check while the
// session lives normally. A session frozen past its trust checks before
// every Open again.
//
// Locks of the earlier protocol are read too: a lock file is turned into
// a folder by the first session (this needs space once), and a kcol file
// holding kind=session is taken over once its mtime is older than the
// lease; any other kcol is the administrator's.
//
// Crash leftovers. Clean (run by pop3d at start and hourly, see Run)
// frees stale holders (putting their uncommitted deletions back), removes
// what a Commit left in lock.done.<token>, temporary lock records of the
// earlier protocol, temporary files of dead writers (this node's at once,
// others' after TmpMaxAge) and interrupted folder deletions; it counts
// them in store_leftovers_removed_total{kind}.
//
// The administrator's mailbox lock (LockMailbox) takes the session lock and
// renames it to kcol; it never goes stale, and UnlockMailbox renames it
// back to lock. LockMailbox on a mailbox held by a live session is
// refused with store.ErrMailboxInUse. The domain lock is the file
// domain.locked in the domain folder: OpenSession checks it first, so it
// locks every mailbox of the domain, present and future
// (store.ErrDomainLocked).
//
// DeleteMailbox and RenameMailbox take the session lock for their work and
// refuse with store.ErrMailboxInUse while a live session holds the mailbox:
// deleting files under a session would break its RETR and its QUIT. An
// administrator's lock does not stop them (a renamed mailbox stays locked).
// DeleteDomain with force refuses when any of its mailboxes is held. Folders
// are deleted by renaming them into .pop3/trash first (gone at once for
// every reader), then removing them; Open finishes deletions a crash
// interrupted.
//
// # Sessions
//
// OpenSession lists the folder once (getdents, then fstatat for each size;
// no body is read) and sorts by name, i.e. by arrival. All UIDs share one
// string, so opening a mailbox costs a few allocations whatever its size.
// MailboxSession.Open returns the open message file, read with plain
// read(2) calls (a msgFile: no *os.File, whose poller registration would
// only add system calls to every RETR). A message
// deleted meanwhile (by an administrator or another server after a lease
// expired) gives store.ErrNoSuchMessage. Commit removes the deleted
// messages, fsyncs the folder and releases the lock; a crash before Commit
// deletes nothing (RFC 1939 section 6: deletions happen in the UPDATE state
// only).
//
// # Credentials and the store key
//
// The seed keeps the password hash in the lock file. Here the lock file is
// renamed, replaced and taken over concurrently by sessions, so credentials
// live in their own file, passwd, written atomically (temporary file in the
// mailbox folder, fsync, rename, folder fsync). It is the JSON form of a
// credential.Record (package store/credential, shared with the in-memory
// store), with:
//
//   - a hash of the password with its parameters: argon2id (RFC 9106) with a
//     16-octet random salt (DefaultArgon2: 3 passes, 19 MiB, 1 lane, 32
//     octets), or bcrypt or SHA-512-crypt in their usual text form, as
//     Options.Hash (Limits.Hash on reload) chooses; the parameters are read
//     back from the file, and a file made with other ones than the current
//     is rewritten at the mailbox's next successful login, under an flock
//     of the mailbox folder and only if the file still holds the record
//     the login verified (a password changed meanwhile wins);
//   - the NT hash (MD4 of the UTF-16LE password, MS-NLMP 3.3.1) followed by
//     the password, sealed with AES-256-GCM under the store key, a random
//     96-bit nonce, and "pop3svc passwd v1 " + mailbox@domain as additional
//     data, so a record moved to another mailbox does not open. APOP and
//     CRAM-MD5 need the password itself, NTLM its NT hash.
//
// VerifyPassword compares in constant time; an unknown mailbox, a mailbox
// without passwd, an invalid name and a wrong password all compute one
// hash (over a dummy record with the current parameters when there is no
// record) and return store.ErrAuthFailed. SetPasswordHash stores a bcrypt
// or SHA-512-crypt hash brought from another system, without sealed
// secrets until its first successful login. The password is never written
// in clear under the mail root.
//
// The store key (.pop3/key) is made on the first Open of a store: written
// in full to .pop3/tmp, fsynced, and linked to .pop3/key; link fails if
// another server won the race, and both then use the winner's key. It
// plays the part of the seed's shared GUID: servers sharing one store (the
// seed's NAS layout) mount the same mail root and so read the same key,
// with nothing to configure. When a store is moved or copied, copy
// .pop3/key with it (mode 0600): without it every password file becomes
// unreadable for APOP, CRAM-MD5 and NTLM (plaintext logins keep working,
// since the argon2id hash does not depend on the key). Back the key up
// separately from the messages.
//
// # Several servers
//
// Every server sharing a store points its mailroot at the same folder and
// has its own node number and the same lock_lease. The store relies on
// these rules of the shared file system, checked on GlusterFS by
// make test-cluster (TestSharedRules, TestSharedConformance,
// TestSharedFencing, two FUSE clients of a replica-2 volume):
//
//   - link(2) never replaces (message names, the store key);
//   - rename(2) is atomic and resolves its source by name on the server,
//     so of two clients renaming lock exactly one wins, and a holder's
//     commit point fails once its folder was renamed away;
//   - a plain rename never replaces a non-empty folder (RENAME_NOREPLACE
//     is missing on GlusterFS's FUSE client and on NFS: the store then
//     checks and renames, and lock folders always hold their owner file);
//   - flock(2) excludes across clients (the SMTP queue);
//   - fsync of files and folders succeeds (on FUSE a folder's fsync may
//     be refused; durable.SyncDir accepts that);
//   - an mtime set by one client is seen by the others.
//
// What does not hold, and how the store lives with it:
//
//   - A client caches names (GlusterFS entry-timeout, NFS lookupcache)
//     and attributes (attribute-timeout, actimeo) for a moment, 1 s by
//     default. A holder whose folder was just taken over may still move a
//     message into it by the old name: that message lands in the taker's
//     folder, tagged with the old holder's token, and is put back by
//     whoever empties that folder next (the taker's commit, the next
//     session, or Clean); the old holder's commit point still fails, so
//     it deletes nothing. A take-over only happens after a whole lease
//     without renewal, far longer than these caches live. A contender
//     may see a renewal up to the attribute timeout late: keep lock_lease
//     well above three times it (the 90 s default is).
//   - GlusterFS's md-cache (performance.stat-prefetch) answers folder
//     listings from a client's cache, which hides such a message from the
//     next session's look for it: set performance.stat-prefetch off on
//     the volume (.ci/gluster-up.sh does).
//   - The mail queue (store/queue) must read an entry's progress log, under
//     its lock, as another server just left it, or it delivers a copy
//     twice. The queue reads the log past the kernel's FUSE caches (which
//     keep a file's size and pages for the attribute timeout); GlusterFS's
//     quick-read serves small files from the client process's own cache
//     (open-behind lets it do so without opening the file): set
//     performance.quick-read off and performance.open-behind off on the
//     volume (.ci/gluster-up.sh does).
//   - Clocks: lock names and renewals carry each server's own clock;
//     keep clocks in sync (NTP), well within the lease.
//
// Mount options. GlusterFS: mount -t glusterfs server:/volume /srv/mail
// on every server (FUSE; defaults), with performance.stat-prefetch,
// performance.quick-read and performance.open-behind off on the volume; a replica-2 volume needs a quorum setting or an arbiter
// brick in production to avoid split-brain. NFS (v4.1 or later): hard
// mounts (hard, the default), no "nolock", lookupcache=positive or none,
// actimeo at most a few seconds.
package filestore
