//! ZFS on the host: observe through `zpool`/`zfs`/`lsblk`/`blkid` ([`observe`]), plan the
//! ARC limit, pools and datasets ([`plan`], pure).

pub mod observe;
pub mod plan;

pub use observe::{DiskObserved, ZfsObserved};
