// SPDX-License-Identifier: MPL-2.0

//! Just enough of ELF to check a shared library before `dlopen()` (complete,
//! not truncated) and to list the libraries it needs (`DT_NEEDED`), reading
//! only the parts needed: a GPU provider library is ~300 MB.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const LITTLE_ENDIAN: u8 = 1;
const HEADER_64: usize = 64;
const PHDR_64: usize = 56;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
/// Largest dynamic section or string table read.
const MAX_TABLE: u64 = 4 << 20;

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Checks that a file of `len` bytes whose first bytes are `header` holds a
/// complete ELF image (see [`super::runtime::check_library_file`]);
/// `read_at` reads the program headers.
pub fn check_complete(
    header: &[u8],
    len: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> Result<(), String> {
    if header.len() < 16 || &header[..4] != ELF_MAGIC {
        return Err(format!(
            "not a shared library (no ELF header in its first {} bytes; {len} bytes in all)",
            header.len()
        ));
    }
    if header[4] != CLASS_64 || header[5] != LITTLE_ENDIAN {
        // the loader refuses those itself, before mapping anything
        return Ok(());
    }
    if header.len() < HEADER_64 {
        return Err(format!(
            "truncated library: {len} bytes, shorter than an ELF header"
        ));
    }
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([header[o], header[o + 1]]));
    let (phoff, shoff) = (u64_at(header, 0x20), u64_at(header, 0x28));
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let (shentsize, shnum) = (u16_at(0x3a), u16_at(0x3c));
    let truncated = |what: &str, end: u64| {
        format!(
            "truncated library: {what} ends at byte {end} but the file has {len} bytes \
             (an incomplete download or copy? install it again)"
        )
    };
    let table_end = |off: u64, size: u64, n: u64| off.saturating_add(size.saturating_mul(n));
    let end = table_end(phoff, phentsize, phnum);
    if end > len {
        return Err(truncated("the program header table", end));
    }
    if shoff != 0 && table_end(shoff, shentsize, shnum) > len {
        return Err(truncated(
            "the section header table",
            table_end(shoff, shentsize, shnum),
        ));
    }
    if phentsize as usize != PHDR_64 {
        return Err(format!(
            "malformed ELF file: program headers of {phentsize} bytes"
        ));
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    read_at(phoff, &mut table)?;
    for (i, ph) in table.chunks_exact(PHDR_64).enumerate() {
        let kind = u32::from_le_bytes(ph[..4].try_into().expect("4 bytes"));
        let (offset, filesz) = (u64_at(ph, 8), u64_at(ph, 32));
        let end = offset.saturating_add(filesz);
        if end > len {
            let what = if kind == PT_LOAD {
                format!("loadable segment {i}")
            } else {
                format!("segment {i}")
            };
            return Err(truncated(&what, end));
        }
    }
    Ok(())
}

/// The libraries a 64-bit little-endian ELF shared library names as needed
/// (`DT_NEEDED`), in order.
pub fn needed_libraries(path: &Path) -> Result<Vec<String>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut read_at = |offset: u64, len: u64| -> Result<Vec<u8>, String> {
        if len > MAX_TABLE {
            return Err(format!("an ELF table of {len} bytes"));
        }
        let mut buf = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| format!("cannot read: {e}"))?;
        Ok(buf)
    };
    let header = read_at(0, HEADER_64 as u64)?;
    if &header[..4] != ELF_MAGIC || header[4] != CLASS_64 || header[5] != LITTLE_ENDIAN {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let phoff = u64_at(&header, 0x20);
    let phnum = u64::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    let table = read_at(phoff, phnum * PHDR_64 as u64)?;
    // (type, file offset, virtual address, size in the file)
    let phdrs: Vec<(u32, u64, u64, u64)> = table
        .chunks_exact(PHDR_64)
        .map(|ph| {
            let kind = u32::from_le_bytes(ph[..4].try_into().expect("4 bytes"));
            (kind, u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 32))
        })
        .collect();
    let Some(&(_, dyn_off, _, dyn_size)) = phdrs.iter().find(|p| p.0 == PT_DYNAMIC) else {
        return Ok(Vec::new());
    };
    let dynamic = read_at(dyn_off, dyn_size)?;
    let (mut needed, mut strtab, mut strsz) = (Vec::new(), None, 0);
    for entry in dynamic.chunks_exact(16) {
        let (tag, value) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed.push(value),
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = value,
            _ => {}
        }
    }
    let Some(strtab) = strtab else {
        return Ok(Vec::new());
    };
    // the string table's address, as a file offset (through its load segment)
    let (_, seg_off, seg_addr, _) = phdrs
        .iter()
        .find(|p| p.0 == PT_LOAD && (p.2..p.2 + p.3).contains(&strtab))
        .ok_or("the string table is in no loadable segment")?;
    let strings = read_at(strtab - seg_addr + seg_off, strsz)?;
    needed
        .into_iter()
        .map(|o| {
            let rest = strings
                .get(o as usize..)
                .ok_or("a name past the string table")?;
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_needed_libraries() {
        // GStreamer's core library, installed with the development packages
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libgstreamer-1.0.so.0");
        let needed = needed_libraries(lib).unwrap();
        assert!(needed.iter().any(|n| n == "libglib-2.0.so.0"), "{needed:?}");
        assert!(needed.iter().any(|n| n == "libc.so.6"), "{needed:?}");
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(
            &text,
            "not ELF at all, but long enough to hold a header: 0123456789",
        )
        .unwrap();
        assert!(needed_libraries(&text).is_err());
    }
}
