//! Built-in analysis modules, one file each.

pub mod archive;
#[cfg(test)]
mod archive_test;
pub mod clamav;
pub mod command;
pub mod cuckoo;
pub mod elf;
pub mod fileextensions;
pub mod filemeta;
mod le_bytes;
pub mod macho;
pub mod metadefender;
pub mod nsrl;
pub mod office;
mod office_props;
mod office_vba;
pub mod pdf;
mod pdf_keywords;
mod pdf_objects;
pub mod pe;
mod pe_resources;
pub mod strings;
pub mod virustotal;
mod web_api;
#[cfg(feature = "yara")]
pub mod yara;
pub mod yara_config;
