//! Built-in analysis modules, one file each.

pub mod archive;
#[cfg(test)]
mod archive_test;
pub mod command;
pub mod elf;
pub mod filemeta;
pub mod pe;
pub mod strings;
#[cfg(feature = "yara")]
pub mod yara;
pub mod yara_config;
