//! What the dynamic loader will look at in one ELF file: `DT_NEEDED`, `DT_RPATH`/`DT_RUNPATH`,
//! version needs (`.gnu.version_r`) with the symbols that use each version, version
//! definitions (`.gnu.version_d`) and the `NT_GNU_ABI_TAG` minimum kernel.
//!
//! Only the section headers, the dynamic section, the dynamic symbol table and the note
//! sections are touched, so a large library costs a few pages of I/O, not its size.

use object::{
    elf,
    read::elf::{Dyn as _, FileHeader, SectionHeader as _, Sym as _},
    Endianness,
};
use serde::{Deserialize, Serialize};

use envship_spec::DottedVersion;

/// A file that starts like ELF but whose structures could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed ELF: {0}")]
pub struct ElfError(String);

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        Self(e.to_string())
    }
}

/// What kind of ELF object a file is (`e_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElfKind {
    /// `ET_EXEC`: a non-PIE executable.
    Executable,
    /// `ET_DYN`: a shared library or a PIE executable.
    SharedObject,
    /// `ET_REL`: an object file (`.o`); never loaded, so not checked.
    Relocatable,
    /// `ET_CORE` or anything else; not checked.
    Other,
}

/// One symbol version a file needs from one library (`Vernaux` under a `Verneed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionNeed {
    /// The library the version is needed from (`vn_file`), e.g. `libc.so.6`.
    pub library: String,
    /// The version name, e.g. `GLIBC_2.14`.
    pub name: String,
    /// `vna_flags` has `VER_FLG_WEAK`: the loader tolerates the version being absent.
    pub flag_weak: bool,
    /// Every dynamic symbol bound to this version is `STB_WEAK` (and there is at least one).
    /// The program copes with the symbols being absent, but unless `flag_weak` is also set the
    /// loader still refuses the file when the version is missing.
    pub weak_symbols_only: bool,
    /// The undefined dynamic symbols bound to this version, sorted, as `name@VERSION`.
    pub symbols: Vec<String>,
}

impl VersionNeed {
    /// The namespace part of the version name (`GLIBC` for `GLIBC_2.14`) and its dotted
    /// version, when the name has that shape.
    pub fn split(&self) -> Option<(&str, DottedVersion)> {
        split_version_name(&self.name)
    }
}

/// Split `GLIBCXX_3.4.21` into `("GLIBCXX", 3.4.21)`; `GLIBC_PRIVATE` gives `None`.
pub fn split_version_name(name: &str) -> Option<(&str, DottedVersion)> {
    let (ns, ver) = name.rsplit_once('_')?;
    Some((ns, ver.parse().ok()?))
}

/// The loader-relevant facts about one ELF file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfInfo {
    /// 32 or 64.
    pub class: u8,
    /// `e_machine` (62 = x86-64).
    pub machine: u16,
    /// `e_type`.
    pub kind: ElfKind,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries (ignored by the loader when `DT_RUNPATH` is present).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// `PT_INTERP`-style `.interp` contents, for executables.
    pub interp: Option<String>,
    /// `DT_FLAGS_1` has `DF_1_PIE`: a position-independent executable (a static-pie has no
    /// interpreter, so this is how it differs from a shared library).
    #[serde(default)]
    pub pie: bool,
    /// Version needs, in file order.
    pub version_needs: Vec<VersionNeed>,
    /// Version names this file defines (`.gnu.version_d`, without the base entry).
    pub version_defs: Vec<String>,
    /// The highest minimum kernel of the `NT_GNU_ABI_TAG` notes with OS Linux.
    pub abi_tag: Option<DottedVersion>,
}

impl ElfInfo {
    /// Whether this object goes through the dynamic loader (executables and shared objects).
    pub fn is_loadable(&self) -> bool {
        matches!(self.kind, ElfKind::Executable | ElfKind::SharedObject)
    }

    /// A program rather than a library: `ET_EXEC`, or `ET_DYN` with an interpreter or the PIE
    /// flag.
    pub fn is_executable(&self) -> bool {
        self.kind == ElfKind::Executable
            || (self.kind == ElfKind::SharedObject && (self.interp.is_some() || self.pie))
    }

    /// A statically linked executable: no interpreter and no library to load. The kernel runs
    /// it directly (a static-pie relocates itself), so the target's loader and libraries
    /// play no part.
    pub fn is_static(&self) -> bool {
        self.is_executable() && self.interp.is_none() && self.needed.is_empty()
    }
}

/// Whether `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(&elf::ELFMAG)
}

/// Parse one ELF file. `Ok(None)` when it is not ELF at all.
pub fn parse_elf(data: &[u8]) -> Result<Option<ElfInfo>, ElfError> {
    if !is_elf(data) || data.len() < 5 {
        return Ok(None);
    }
    // e_ident[EI_CLASS]
    match data[4] {
        elf::ELFCLASS64 => parse_generic::<elf::FileHeader64<Endianness>>(data).map(Some),
        elf::ELFCLASS32 => parse_generic::<elf::FileHeader32<Endianness>>(data).map(Some),
        c => Err(ElfError(format!("unknown ELF class {c}"))),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_generic<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfInfo, ElfError> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let kind = match header.e_type(endian) {
        elf::ET_EXEC => ElfKind::Executable,
        elf::ET_DYN => ElfKind::SharedObject,
        elf::ET_REL => ElfKind::Relocatable,
        _ => ElfKind::Other,
    };
    let mut info = ElfInfo {
        class: if header.is_class_64() { 64 } else { 32 },
        machine: header.e_machine(endian),
        kind,
        soname: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        interp: None,
        pie: false,
        version_needs: Vec::new(),
        version_defs: Vec::new(),
        abi_tag: None,
    };
    let sections = header.sections(endian, data)?;

    if let Some((dynamic, strtab_index)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, strtab_index)?;
        for d in dynamic {
            let tag = d.tag32(endian);
            let Some(tag) = tag else { continue };
            if tag == elf::DT_NULL {
                break;
            }
            let str_of = || -> Result<String, ElfError> { Ok(lossy(d.string(endian, strings)?)) };
            match tag {
                elf::DT_NEEDED => info.needed.push(str_of()?),
                elf::DT_SONAME => info.soname = Some(str_of()?),
                elf::DT_RPATH => info.rpath.extend(split_path_list(&str_of()?)),
                elf::DT_RUNPATH => info.runpath.extend(split_path_list(&str_of()?)),
                elf::DT_FLAGS_1 => {
                    info.pie = d.val32(endian).is_some_and(|v| v & elf::DF_1_PIE != 0);
                }
                _ => {}
            }
        }
    }

    for section in sections.iter() {
        match section.sh_type(endian) {
            elf::SHT_NOTE => {
                if let Some(mut notes) = section.notes(endian, data)? {
                    while let Some(note) = notes.next()? {
                        if note.name() == elf::ELF_NOTE_GNU
                            && note.n_type(endian) == elf::NT_GNU_ABI_TAG
                        {
                            if let Some(v) = abi_tag_version(note.desc(), endian) {
                                if info.abi_tag.as_ref().is_none_or(|cur| &v > cur) {
                                    info.abi_tag = Some(v);
                                }
                            }
                        }
                    }
                }
            }
            elf::SHT_PROGBITS
                if info.interp.is_none()
                    && sections.section_name(endian, section).ok() == Some(b".interp") =>
            {
                if let Ok(bytes) = section.data(endian, data) {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    info.interp = Some(lossy(&bytes[..end]));
                }
            }
            _ => {}
        }
    }

    // Version definitions.
    if let Some((mut defs, link)) = sections.gnu_verdef(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((def, mut aux)) = defs.next()? {
            if def.vd_flags.get(endian) & elf::VER_FLG_BASE != 0 {
                continue;
            }
            if let Some(a) = aux.next()? {
                info.version_defs.push(lossy(a.name(endian, strings)?));
            }
        }
    }

    // Version needs, with the symbols bound to each (by version index).
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        // index -> position in info.version_needs
        let mut by_index: Vec<(u16, usize)> = Vec::new();
        while let Some((need, mut aux)) = needs.next()? {
            let library = lossy(need.file(endian, strings)?);
            while let Some(a) = aux.next()? {
                let flags = a.vna_flags.get(endian);
                by_index.push((
                    a.vna_other.get(endian) & elf::VERSYM_VERSION,
                    info.version_needs.len(),
                ));
                info.version_needs.push(VersionNeed {
                    library: library.clone(),
                    name: lossy(a.name(endian, strings)?),
                    flag_weak: flags & elf::VER_FLG_WEAK != 0,
                    weak_symbols_only: false,
                    symbols: Vec::new(),
                });
            }
        }
        let mut strong_refs = vec![false; info.version_needs.len()];
        if let Some((versyms, _)) = sections.gnu_versym(endian, data)? {
            let symbols = sections.symbols(endian, data, elf::SHT_DYNSYM)?;
            let strtab = symbols.strings();
            for (i, sym) in symbols.symbols().iter().enumerate() {
                let Some(vs) = versyms.get(i) else { break };
                let idx = vs.0.get(endian) & elf::VERSYM_VERSION;
                if idx <= 1 || sym.st_shndx(endian) != elf::SHN_UNDEF {
                    continue;
                }
                let Some(&(_, pos)) = by_index.iter().find(|(v, _)| *v == idx) else {
                    continue;
                };
                let name = lossy(sym.name(endian, strtab)?);
                let need = &mut info.version_needs[pos];
                need.symbols.push(format!("{name}@{}", need.name));
                if sym.st_bind() != elf::STB_WEAK {
                    strong_refs[pos] = true;
                }
            }
        }
        for (need, strong) in info.version_needs.iter_mut().zip(strong_refs) {
            need.symbols.sort();
            need.symbols.dedup();
            need.weak_symbols_only = !need.symbols.is_empty() && !strong;
        }
    }
    Ok(info)
}

/// `NT_GNU_ABI_TAG` descriptor: four words, OS (0 = Linux), major, minor, subminor.
fn abi_tag_version(desc: &[u8], endian: Endianness) -> Option<DottedVersion> {
    use object::Endian as _;
    if desc.len() < 16 {
        return None;
    }
    let word = |i: usize| {
        let b: [u8; 4] = desc[i * 4..i * 4 + 4].try_into().ok()?;
        Some(endian.read_u32_bytes(b))
    };
    if word(0)? != elf::ELF_NOTE_OS_LINUX {
        return None;
    }
    Some(DottedVersion::new([word(1)?, word(2)?, word(3)?]))
}

fn split_path_list(s: &str) -> Vec<String> {
    s.split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_version_names() {
        let (ns, v) = split_version_name("GLIBCXX_3.4.21").expect("split");
        assert_eq!(ns, "GLIBCXX");
        assert_eq!(v.to_string(), "3.4.21");
        assert!(split_version_name("GLIBC_PRIVATE").is_none());
        let (ns, _) = split_version_name("CXXABI_TM_1").expect("split");
        assert_eq!(ns, "CXXABI_TM");
    }

    #[test]
    fn non_elf_is_none() {
        assert!(parse_elf(b"#!/bin/sh\n").expect("ok").is_none());
        assert!(parse_elf(b"").expect("ok").is_none());
    }

    #[test]
    fn truncated_elf_is_an_error() {
        let mut data = elf::ELFMAG.to_vec();
        data.extend([elf::ELFCLASS64, 1, 1, 0]);
        assert!(parse_elf(&data).is_err());
    }

    #[test]
    fn reads_the_test_binary_itself() {
        // The test executable is a real ELF file linked against the host's glibc.
        let exe = std::env::current_exe().expect("exe");
        let data = std::fs::read(exe).expect("read");
        let info = parse_elf(&data).expect("parse").expect("elf");
        assert!(info.is_loadable());
        assert!(
            info.needed.iter().any(|n| n == "libc.so.6"),
            "{:?}",
            info.needed
        );
        assert!(info
            .version_needs
            .iter()
            .any(|v| v.name.starts_with("GLIBC_2.")));
    }
}
