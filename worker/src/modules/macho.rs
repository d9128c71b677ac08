//! `macho`: Mach-O executables, libraries and objects (macOS, iOS), and
//! universal ("fat") files holding one per architecture: per binary the
//! CPU, file type, entry point, UUID, minimum OS, load commands, segments
//! with their sections (entropy, MD5), linked libraries, run paths,
//! imported and exported symbols (capped), code signature and encryption.

use futures::future::BoxFuture;
use goblin::mach::{
    Mach, MachO, SingleArch,
    constants::cputype::get_arch_name_from_types,
    header::filetype_to_str,
    load_command::{CommandVariant, cmd_to_str},
};
use serde_json::{Value, json};

use super::pe::{MAX_BYTES, entropy, md5_hex};
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput, blocking};

/// Symbols of each kind listed at most.
pub const MAX_SYMBOLS: usize = 2000;
/// Architectures of a universal file described at most.
const MAX_ARCHES: usize = 16;

const MAGICS: &[[u8; 4]] = &[
    [0xfe, 0xed, 0xfa, 0xce],
    [0xce, 0xfa, 0xed, 0xfe],
    [0xfe, 0xed, 0xfa, 0xcf],
    [0xcf, 0xfa, 0xed, 0xfe],
    // Universal; Java class files share it and are told apart by goblin.
    [0xca, 0xfe, 0xba, 0xbe],
];

#[derive(Debug, Default)]
pub struct MachOModule;

impl Module for MachOModule {
    fn name(&self) -> &'static str {
        "macho"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Metadata"
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        blocking(move || {
            let mut head = [0u8; 4];
            {
                use std::io::Read;
                let mut f = std::fs::File::open(&*input.path)?;
                if f.read_exact(&mut head).is_err() || !MAGICS.contains(&head) {
                    return Ok(ModuleOutput::default());
                }
                if f.metadata()?.len() > MAX_BYTES {
                    return Err(ModuleError::Failed(format!(
                        "larger than the {MAX_BYTES} bytes parsed"
                    )));
                }
            }
            let bytes = std::fs::read(&*input.path)?;
            let mach = match Mach::parse_lossy(&bytes) {
                Ok(m) => m,
                // A Java class file shares the universal magic.
                Err(_) if head == [0xca, 0xfe, 0xba, 0xbe] => return Ok(ModuleOutput::default()),
                Err(e) => {
                    return Err(ModuleError::Failed(format!(
                        "not a readable Mach-O file: {e}"
                    )));
                }
            };
            Ok(ModuleOutput::result(describe_mach(&mach)?))
        })
    }
}

fn describe_mach(mach: &Mach<'_>) -> Result<Value, ModuleError> {
    match mach {
        Mach::Binary(m) => Ok(json!({"universal": false, "binaries": [describe(m)]})),
        Mach::Fat(multi) => {
            let mut binaries = Vec::new();
            for i in 0..multi.narches.min(MAX_ARCHES) {
                match multi.get(i) {
                    Ok(SingleArch::MachO(m)) => binaries.push(describe(&m)),
                    Ok(SingleArch::Archive(_)) => binaries.push(json!({"kind": "static archive"})),
                    Err(e) => binaries.push(json!({"error": e.to_string()})),
                }
            }
            Ok(json!({"universal": true, "binaries": binaries}))
        }
    }
}

/// `X.Y.Z` from nibbles `xxxx.yy.zz`.
fn version(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

fn platform(p: u32) -> &'static str {
    match p {
        1 => "macOS",
        2 => "iOS",
        3 => "tvOS",
        4 => "watchOS",
        5 => "bridgeOS",
        6 => "Mac Catalyst",
        7 => "iOS simulator",
        8 => "tvOS simulator",
        9 => "watchOS simulator",
        10 => "DriverKit",
        11 => "visionOS",
        12 => "visionOS simulator",
        _ => "unknown",
    }
}

fn uuid(b: &[u8; 16]) -> String {
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Imported and exported symbols from the symbol table, as `nm` reads
/// them: external symbols, undefined ones with the library their
/// two-level-namespace ordinal names. (goblin's export-trie walk recurses
/// without bound on a cyclic trie, which a hostile file can hold.)
fn symbols(m: &MachO<'_>) -> (Vec<Value>, Vec<String>) {
    use goblin::mach::symbols::{N_EXT, N_STAB, N_TYPE, N_UNDF};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for sym in m.symbols().take(1_000_000) {
        let Ok((name, nlist)) = sym else { break };
        if nlist.n_type & N_STAB != 0 || nlist.n_type & N_EXT == 0 {
            continue;
        }
        if nlist.n_type & N_TYPE == N_UNDF {
            if imports.len() < MAX_SYMBOLS {
                // The library ordinal: 1.. index the libraries (goblin's
                // list starts with the binary itself at 0).
                let ordinal = usize::from(nlist.n_desc >> 8);
                let library = match ordinal {
                    0 | 0xfe | 0xff => None,
                    n => m.libs.get(n).copied(),
                };
                imports.push(json!({"name": name, "library": library}));
            }
        } else if exports.len() < MAX_SYMBOLS {
            exports.push(name.to_owned());
        }
        if imports.len() >= MAX_SYMBOLS && exports.len() >= MAX_SYMBOLS {
            break;
        }
    }
    (imports, exports)
}

fn describe(m: &MachO<'_>) -> Value {
    let h = &m.header;
    let mut uuid_text = None;
    let mut min_os = None;
    let mut signed = false;
    let mut encrypted = None;
    for lc in &m.load_commands {
        match &lc.command {
            CommandVariant::Uuid(u) => uuid_text = Some(uuid(&u.uuid)),
            CommandVariant::BuildVersion(b) => {
                min_os = Some(json!({"platform": platform(b.platform),
                    "minimum": version(b.minos), "sdk": version(b.sdk)}));
            }
            CommandVariant::VersionMinMacosx(v) => {
                min_os = Some(json!({"platform": "macOS", "minimum": version(v.version),
                    "sdk": version(v.sdk)}));
            }
            CommandVariant::VersionMinIphoneos(v) => {
                min_os = Some(json!({"platform": "iOS", "minimum": version(v.version),
                    "sdk": version(v.sdk)}));
            }
            CommandVariant::CodeSignature(_) => signed = true,
            CommandVariant::EncryptionInfo32(e) => encrypted = Some(e.cryptid != 0),
            CommandVariant::EncryptionInfo64(e) => encrypted = Some(e.cryptid != 0),
            _ => {}
        }
    }
    let commands: Vec<&str> = m
        .load_commands
        .iter()
        .map(|lc| cmd_to_str(lc.command.cmd()))
        .collect();
    let segments: Vec<Value> = m
        .segments
        .iter()
        .map(|s| {
            let sections: Vec<Value> = s
                .sections()
                .unwrap_or_default()
                .iter()
                .map(|(sec, data)| {
                    json!({
                        "name": sec.name().unwrap_or(""),
                        "address": format!("0x{:x}", sec.addr),
                        "size": sec.size,
                        "entropy": (entropy(data) * 1000.0).round() / 1000.0,
                        "md5": md5_hex(data),
                    })
                })
                .collect();
            json!({
                "name": s.name().unwrap_or(""),
                "address": format!("0x{:x}", s.vmaddr),
                "memory_size": s.vmsize,
                "file_offset": s.fileoff,
                "file_size": s.filesize,
                "sections": sections,
            })
        })
        .collect();
    let (imports, exports) = symbols(m);
    let arch = get_arch_name_from_types(h.cputype(), h.cpusubtype()).unwrap_or("unknown");
    json!({
        "cpu": arch,
        "bits": if m.is_64 { 64 } else { 32 },
        "type": filetype_to_str(h.filetype),
        "flags": format!("0x{:x}", h.flags),
        "entry_point": (m.entry != 0).then(|| format!("0x{:x}", m.entry)),
        "uuid": uuid_text,
        "minimum_os": min_os,
        "install_name": m.name,
        "load_commands": commands,
        "segments": segments,
        // The first entry goblin lists is the binary itself.
        "libraries": m.libs.iter().skip(1).collect::<Vec<_>>(),
        "rpaths": m.rpaths,
        "imports": imports,
        "exports": exports,
        "code_signature": signed,
        "encrypted": encrypted,
    })
}
