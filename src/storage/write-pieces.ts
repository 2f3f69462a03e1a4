/**
 * Most bytes Alloy hands the operating system in one buffered file write (OPFS sync access
 * handles; Node's file handles where direct writes are not to be had, node-direct-sink.ts); longer
 * writes go in pieces of this size. Linux (6.x, ext4 with large folios) backs a buffered write
 * with page-cache folios as large as the write allows, and on the test machines (a VM) filling
 * large ones cost several times the copy (dd to ext4, each after 6-8 s idle): 337 MB in 8 MiB
 * writes took 0.9–1.2 s of kernel time, in 1 MiB writes 0.07 s; but 1.9 GB in 1 MiB writes took
 * 2.6–2.9 s, in 512 KiB writes 0.37–0.44 s (256 KiB: 0.5 s).
 * Smaller pieces cost only more calls.
 */
export const WRITE_PIECE_BYTES = 512 * 1024;
