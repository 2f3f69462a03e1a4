/**
 * Most bytes Alloy hands the operating system in one file write (Node's file handles, OPFS sync
 * access handles); longer writes go in pieces of this size. Linux (6.x, ext4 with large folios)
 * backs a buffered write of 2 MiB or more with 2 MiB page-cache folios, and on the test machines
 * (a VM) filling those cost ten times the copy: 337 MB written in 8 MiB writes took 0.9–1.2 s of
 * kernel time, in 1 MiB writes 0.07 s (dd to ext4, each after 8 s idle). Smaller pieces cost only
 * more calls.
 */
export const WRITE_PIECE_BYTES = 1024 * 1024;
