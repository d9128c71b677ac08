//! `elf`: ELF executables, shared libraries and objects: header, program
//! interpreter, needed libraries, sections with entropy and MD5, segments,
//! and dynamic symbols (imported and exported, capped).

use futures::future::BoxFuture;
use goblin::elf::{
    Elf, header::et_to_str, header::machine_to_str, program_header::pt_to_str,
    section_header::sht_to_str,
};
use serde_json::{Value, json};

use super::pe::{entropy, md5_hex, read_if, slice};
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Symbols of each kind (imported, exported) listed at most.
pub const MAX_SYMBOLS: usize = 2000;

#[derive(Debug, Default)]
pub struct ElfModule;

impl Module for ElfModule {
    fn name(&self) -> &'static str {
        "elf"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            let Some(bytes) = read_if(&input.path, b"\x7fELF")? else {
                return Ok(ModuleOutput::default());
            };
            let elf = Elf::parse(&bytes)
                .map_err(|e| ModuleError::Failed(format!("not a readable ELF file: {e}")))?;
            Ok(ModuleOutput::result(describe(&elf, &bytes)))
        })
    }
}

fn hex(v: u64) -> String {
    format!("0x{v:x}")
}

/// `R`, `W`, `E` as readelf prints segment flags.
fn flags(f: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(4, 'R'), (2, 'W'), (1, 'E')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn describe(elf: &Elf<'_>, bytes: &[u8]) -> Value {
    let h = &elf.header;
    let sections: Vec<Value> = elf
        .section_headers
        .iter()
        .map(|s| {
            // NOBITS sections (.bss) have no bytes in the file.
            let data = if s.sh_type == goblin::elf::section_header::SHT_NOBITS {
                &[][..]
            } else {
                slice(bytes, s.sh_offset, s.sh_size)
            };
            json!({
                "name": elf.shdr_strtab.get_at(s.sh_name).unwrap_or(""),
                "type": sht_to_str(s.sh_type),
                "address": hex(s.sh_addr),
                "size": s.sh_size,
                "entropy": (entropy(data) * 1000.0).round() / 1000.0,
                "md5": md5_hex(data),
            })
        })
        .collect();
    let segments: Vec<Value> = elf
        .program_headers
        .iter()
        .map(|p| {
            json!({
                "type": pt_to_str(p.p_type),
                "flags": flags(p.p_flags),
                "virtual_address": hex(p.p_vaddr),
                "file_size": p.p_filesz,
                "memory_size": p.p_memsz,
            })
        })
        .collect();
    let (mut imported, mut exported) = (Vec::new(), Vec::new());
    for sym in elf.dynsyms.iter() {
        let Some(name) = elf.dynstrtab.get_at(sym.st_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        let list = if sym.is_import() {
            &mut imported
        } else if sym.st_bind() != goblin::elf::sym::STB_LOCAL && sym.st_shndx != 0 {
            &mut exported
        } else {
            continue;
        };
        if list.len() < MAX_SYMBOLS {
            list.push(name);
        }
    }
    json!({
        "class": if elf.is_64 { "ELF64" } else { "ELF32" },
        "endianness": if elf.little_endian { "little" } else { "big" },
        "type": et_to_str(h.e_type),
        "machine": machine_to_str(h.e_machine),
        "entry_point": hex(elf.entry),
        "interpreter": elf.interpreter,
        "libraries": elf.libraries,
        "soname": elf.soname,
        "rpath": elf.rpaths,
        "runpath": elf.runpaths,
        "sections": sections,
        "segments": segments,
        "dynamic_symbol_count": elf.dynsyms.len(),
        "symbol_count": elf.syms.len(),
        "stripped": elf.syms.is_empty(),
        "imported_symbols": imported,
        "exported_symbols": exported,
    })
}
