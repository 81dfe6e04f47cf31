// Package job runs one scan of a register into a store, from the register's
// first line to the run's last stored result: what `tlsready scan` does,
// and `tlsready demo` and the tests through the same code.
//
// Run (Config) goes through these steps:
//
//  1. The register is checked (it opens) and named (InputIdentity: path,
//     size and modification time; in a shared run its content's hash), and
//     the resolver is asked the root NS question (CheckResolver), before the
//     store is touched: a scan that cannot start leaves nothing behind.
//  2. The store is opened and locked (ErrScanLocked: one scan per SQLite
//     database; the workers of a PostgreSQL run take turns to set it up),
//     and the run begun, or resumed when an interrupted run of the same
//     register is found. Interrupted runs of other registers are abandoned.
//  3. Ingest: the register (package register) is read, normalised and
//     deduplicated, and its recipients and domains stored in batches.
//  4. Pending: the run's domains without a result younger than
//     Config.RescanAfter, spread so that a hoster's customers do not queue at
//     its IPs together (scanner.SpreadOrder). In a shared run they are
//     queued in the store, and each worker claims batches of them with
//     leases (Config.Lease) and shares the MX IPs through the store
//     (scanner.IPBroker).
//  5. Scan: a scanner.Scanner is fed the pending domains; Config.Progress
//     is told of each one started and finished.
//  6. The network-health gate: results are held back until a probe has
//     reached a server. A run behind a blocked port 25 or with a resolver
//     that stopped answering (scanner.Scanner.Err) is aborted with
//     ErrNetworkDown, having written nothing: the results cached by
//     earlier runs are not overwritten by a broken network's.
//  7. The writer stores the results in batches (store.Writer); a write error
//     stops the scan. An interrupted run (the context cancelled) keeps what
//     finished and returns ErrInterrupted: the same Config resumes it.
//  8. Finish: the run's stats are stored and the run marked finished (in a
//     shared run by the last worker), and Summary counts the run's domains
//     and citizens per verdict (docs/verdicts.md).
//
// Run's errors carry sentinels (ErrInterrupted, ErrNetworkDown,
// ErrScanLocked, ErrNoRegister) for errors.Is: tlsready maps them to its
// exit codes. Nothing here reads flags or the environment, or changes the
// process's garbage collector unless Config.Memory asks for it.
package job
