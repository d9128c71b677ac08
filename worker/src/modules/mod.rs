//! Built-in analysis modules, one file each.

pub mod filemeta;
pub mod strings;
