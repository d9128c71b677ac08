//! The one list of built-in modules, and the selection of modules a worker
//! runs: enabled by config, checked, ordered by their dependencies.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{module::Module, modules};

/// Every built-in module with its settings from `config`. Adding a module
/// means adding it here.
pub fn builtin_with(config: &ModulesConfig) -> Vec<Arc<dyn Module>> {
    #[allow(unused_mut)]
    let mut list: Vec<Arc<dyn Module>> = vec![
        Arc::new(modules::filemeta::FileMeta),
        Arc::new(modules::pe::Pe),
        Arc::new(modules::elf::ElfModule),
        Arc::new(modules::macho::MachOModule),
        Arc::new(modules::pdf::Pdf),
        Arc::new(modules::office::Office),
        Arc::new(modules::fileextensions::FileExtensions),
        Arc::new(modules::nsrl::Nsrl::new(config.nsrl.clone())),
        Arc::new(modules::virustotal::VirusTotal::new(
            config.virustotal.clone(),
        )),
        Arc::new(modules::cuckoo::Cuckoo::new(config.cuckoo.clone())),
        Arc::new(modules::metadefender::MetaDefender::new(
            config.metadefender.clone(),
        )),
        Arc::new(modules::archive::Archive {
            config: config.archive.clone(),
        }),
        Arc::new(modules::strings::Strings {
            config: config.strings.clone(),
        }),
        Arc::new(modules::clamav::Clamav {
            config: config.clamav.clone(),
        }),
    ];
    list.push(Arc::new(modules::command::Command::exiftool(
        &config.exiftool,
    )));
    #[cfg(feature = "yara")]
    list.push(Arc::new(modules::yara::Yara::new(config.yara.clone())));
    // Configured commands come last: one that takes a built-in module's
    // name replaces it and says why it cannot run.
    let taken: Vec<&'static str> = list.iter().map(|m| m.name()).collect();
    for (name, command) in &config.commands {
        let refused = taken
            .contains(&name.as_str())
            .then(|| format!("the name {name:?} belongs to a built-in module; choose another"));
        list.push(Arc::new(modules::command::Command::configured(
            name,
            command.clone(),
            refused,
        )));
    }
    list
}

/// Every built-in module with its default settings.
pub fn builtin() -> Vec<Arc<dyn Module>> {
    builtin_with(&ModulesConfig::default())
}

/// Names of the built-in modules.
pub fn known_names() -> Vec<&'static str> {
    builtin().iter().map(|m| m.name()).collect()
}

/// Module settings: which run, and for how long at most.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModulesConfig {
    /// Modules to run; their dependencies are added.
    pub enabled: Vec<String>,
    /// Longest a module may take on one file, in seconds.
    pub timeout_secs: u64,
    /// Per-module overrides of `timeout_secs`.
    pub timeouts: BTreeMap<String, u64>,
    /// Settings of the `strings` module.
    pub strings: modules::strings::StringsConfig,
    /// Settings of the `archive` module.
    pub archive: modules::archive::ArchiveConfig,
    /// Settings of the `yara` module.
    pub yara: modules::yara_config::YaraConfig,
    /// Settings of the `exiftool` module.
    pub exiftool: modules::command::ExiftoolConfig,
    /// Settings of the `clamav` module.
    pub clamav: modules::clamav::ClamavConfig,
    /// Settings of the `nsrl` module.
    pub nsrl: modules::nsrl::NsrlConfig,
    /// Settings of the `virustotal` module.
    pub virustotal: modules::virustotal::VirusTotalConfig,
    /// Settings of the `cuckoo` module (Cuckoo or CAPE sandboxes).
    pub cuckoo: modules::cuckoo::CuckooConfig,
    /// Settings of the `metadefender` module.
    pub metadefender: modules::metadefender::MetaDefenderConfig,
    /// External tools run as modules, by name.
    pub commands: BTreeMap<String, modules::command::CommandConfig>,
}

impl Default for ModulesConfig {
    fn default() -> Self {
        Self {
            enabled: vec![
                "filemeta".into(),
                "strings".into(),
                "pe".into(),
                "elf".into(),
                "macho".into(),
                "pdf".into(),
                "office".into(),
                "fileextensions".into(),
                "archive".into(),
            ],
            timeout_secs: 300,
            timeouts: BTreeMap::new(),
            strings: Default::default(),
            archive: Default::default(),
            yara: Default::default(),
            exiftool: Default::default(),
            clamav: Default::default(),
            nsrl: Default::default(),
            virustotal: Default::default(),
            cuckoo: Default::default(),
            metadefender: Default::default(),
            commands: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("unknown module {name:?} in {place}; known modules: {}", known.join(", "))]
    Unknown {
        name: String,
        place: &'static str,
        known: Vec<&'static str>,
    },
    #[error("modules {0} depend on each other in a cycle")]
    Cycle(String),
}

/// A module chosen to run, with its timeout.
#[derive(Clone)]
pub struct Selected {
    pub module: Arc<dyn Module>,
    pub timeout: Duration,
    /// Identifies [`Module::config`] (see [`config_hash`]).
    pub config_hash: String,
}

/// A short digest of a module's settings (JSON objects serialise with
/// sorted keys, so equal settings give equal digests).
pub fn config_hash(config: &serde_json::Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(config.to_string().as_bytes());
    hex::encode(&digest[..8])
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selected")
            .field("module", &self.module.name())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The modules a worker offers, in an order where every module comes after
/// the ones it requires.
#[derive(Clone, Debug)]
pub struct Registry {
    modules: Vec<Selected>,
}

impl Registry {
    /// Selects the built-in modules named in `config`.
    pub fn from_config(config: &ModulesConfig) -> Result<Self, RegistryError> {
        Self::with_modules(builtin_with(config), config)
    }

    /// Selects from `available`, so that embedders and tests can add modules
    /// of their own.
    pub fn with_modules(
        available: Vec<Arc<dyn Module>>,
        config: &ModulesConfig,
    ) -> Result<Self, RegistryError> {
        let by_name: BTreeMap<&'static str, Arc<dyn Module>> = available
            .iter()
            .map(|m| (m.name(), Arc::clone(m)))
            .collect();
        let known = || by_name.keys().copied().collect::<Vec<_>>();
        let lookup = |name: &str, place: &'static str| {
            by_name
                .get(name)
                .cloned()
                .ok_or_else(|| RegistryError::Unknown {
                    name: name.to_owned(),
                    place,
                    known: known(),
                })
        };
        for name in config.timeouts.keys() {
            lookup(name, "modules.timeouts")?;
        }
        let mut chosen: Vec<Arc<dyn Module>> = Vec::new();
        for name in &config.enabled {
            chosen.push(lookup(name, "modules.enabled")?);
        }
        let ordered = order_by_dependencies(chosen, &|n| lookup(n, "a module's requirements"))?;
        let modules = ordered
            .into_iter()
            .map(|module| {
                let secs = config
                    .timeouts
                    .get(module.name())
                    .copied()
                    .unwrap_or(config.timeout_secs);
                Selected {
                    config_hash: config_hash(&module.config()),
                    module,
                    timeout: Duration::from_secs(secs.max(1)),
                }
            })
            .collect();
        Ok(Self { modules })
    }

    /// All selected modules, dependencies first.
    pub fn modules(&self) -> &[Selected] {
        &self.modules
    }

    pub fn get(&self, name: &str) -> Option<&Selected> {
        self.modules.iter().find(|s| s.module.name() == name)
    }

    /// The modules to run for a request naming `wanted` (all when empty),
    /// with everything they require, dependencies first. Names this worker
    /// does not offer are returned separately.
    pub fn plan<'a>(&'a self, wanted: &[String]) -> (Vec<&'a Selected>, Vec<String>) {
        if wanted.is_empty() {
            return (self.modules.iter().collect(), Vec::new());
        }
        let mut need: Vec<&str> = Vec::new();
        let mut missing = Vec::new();
        let mut stack: Vec<String> = wanted.to_vec();
        while let Some(name) = stack.pop() {
            if need.contains(&name.as_str()) || missing.contains(&name) {
                continue;
            }
            match self.get(&name) {
                Some(s) => {
                    need.push(s.module.name());
                    stack.extend(s.module.requires().iter().map(|r| (*r).to_owned()));
                }
                None => missing.push(name),
            }
        }
        let plan = self
            .modules
            .iter()
            .filter(|s| need.contains(&s.module.name()))
            .collect();
        (plan, missing)
    }
}

/// Finds a module by name.
type Lookup<'a> = dyn Fn(&str) -> Result<Arc<dyn Module>, RegistryError> + 'a;

/// Adds required modules and sorts so each comes after its requirements.
fn order_by_dependencies(
    chosen: Vec<Arc<dyn Module>>,
    lookup: &Lookup<'_>,
) -> Result<Vec<Arc<dyn Module>>, RegistryError> {
    let mut ordered: Vec<Arc<dyn Module>> = Vec::new();
    let mut visiting: Vec<&'static str> = Vec::new();

    fn visit(
        m: Arc<dyn Module>,
        ordered: &mut Vec<Arc<dyn Module>>,
        visiting: &mut Vec<&'static str>,
        lookup: &Lookup<'_>,
    ) -> Result<(), RegistryError> {
        if ordered.iter().any(|o| o.name() == m.name()) {
            return Ok(());
        }
        if visiting.contains(&m.name()) {
            visiting.push(m.name());
            return Err(RegistryError::Cycle(visiting.join(" -> ")));
        }
        visiting.push(m.name());
        for dep in m.requires() {
            visit(lookup(dep)?, ordered, visiting, lookup)?;
        }
        visiting.pop();
        ordered.push(m);
        Ok(())
    }

    for m in chosen {
        visit(m, &mut ordered, &mut visiting, lookup)?;
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fake;

    fn config(enabled: &[&str]) -> ModulesConfig {
        ModulesConfig {
            enabled: enabled.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn names(r: &Registry) -> Vec<&'static str> {
        r.modules().iter().map(|s| s.module.name()).collect()
    }

    #[test]
    fn unknown_module_error_lists_the_known_ones() {
        let err = Registry::from_config(&config(&["filemeta", "nope"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"nope\""), "{msg}");
        let mut known = "known modules: archive, clamav, cuckoo, elf, exiftool, fileextensions, \
                         filemeta, macho, metadefender, nsrl, office, pdf, pe, strings, virustotal"
            .to_owned();
        if cfg!(feature = "yara") {
            known.push_str(", yara");
        }
        assert!(msg.ends_with(&known), "{msg}");
    }

    #[test]
    fn dependencies_come_first_and_are_added() {
        let available: Vec<Arc<dyn Module>> = vec![
            Arc::new(Fake("c", &["b"])),
            Arc::new(Fake("b", &["a"])),
            Arc::new(Fake("a", &[])),
            Arc::new(Fake("z", &[])),
        ];
        let r = Registry::with_modules(available, &config(&["c", "z"])).unwrap();
        assert_eq!(names(&r), ["a", "b", "c", "z"]);
        let (plan, missing) = r.plan(&["b".into(), "q".into()]);
        let plan: Vec<_> = plan.iter().map(|s| s.module.name()).collect();
        assert_eq!(plan, ["a", "b"]);
        assert_eq!(missing, ["q"]);
    }

    #[test]
    fn cycles_are_refused() {
        let available: Vec<Arc<dyn Module>> =
            vec![Arc::new(Fake("a", &["b"])), Arc::new(Fake("b", &["a"]))];
        let err = Registry::with_modules(available, &config(&["a"])).unwrap_err();
        assert!(matches!(err, RegistryError::Cycle(_)), "{err}");
    }

    #[test]
    fn per_module_timeout_overrides_the_default() {
        let mut c = config(&["filemeta"]);
        c.timeout_secs = 7;
        assert_eq!(
            Registry::from_config(&c).unwrap().modules()[0]
                .timeout
                .as_secs(),
            7
        );
        c.timeouts.insert("filemeta".into(), 3);
        assert_eq!(
            Registry::from_config(&c).unwrap().modules()[0]
                .timeout
                .as_secs(),
            3
        );
        c.timeouts.insert("bogus".into(), 3);
        assert!(Registry::from_config(&c).is_err());
    }
}
