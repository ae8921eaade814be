//! The tidy checks: house rules that the compiler does not enforce, checked on the source text.
//!
//! Every `.rs` file under `crates/` and `xtask/` (outside `target/`) must:
//!
//! - start with a `//!` line saying what it is for;
//! - have a `// SAFETY:` comment on or just above every `unsafe` block, `unsafe impl` and
//!   `unsafe extern` block;
//! - document every `unsafe fn` and `unsafe trait` with a `# Safety` section;
//! - outside `crates/ring`, not use `unsafe` at all. Every other crate must also say
//!   `#![forbid(unsafe_code)]` in its `src/lib.rs` and `src/main.rs`, so the compiler holds the
//!   line between two runs of tidy.
//!
//! The checks work on a copy of the source with comments and string and character literals
//! blanked out (see [`code_only`]), so `unsafe` in a comment or a string is not code. This is a
//! lexer, not a parser: it is exact about comments and literals and pragmatic about the rest.
//!
//! `cargo xtask tidy` runs the checks from the command line; the `tidy` test below runs them
//! under `cargo test`, so the test suite fails on a violation.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// The only crate allowed to contain `unsafe` code.
const UNSAFE_CRATE: &str = "crates/ring";

/// The top-level directories whose `.rs` files are checked.
const CHECKED_DIRS: [&str; 2] = ["crates", "xtask"];

/// How far above an `unsafe` to look for its `// SAFETY:` comment or `# Safety` doc, in lines.
/// Comment lines count, so this bounds the length of the comment too.
const LOOKBACK_LINES: usize = 60;

/// How many lines of code (a multi-line expression or attribute) may stand between a
/// `// SAFETY:` comment and the `unsafe` it is about.
const CODE_LINES_BETWEEN: usize = 3;

/// One broken rule, at one line of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root, with `/` separators.
    pub(crate) path: String,
    /// The 1-based line number.
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.message)
    }
}

/// What a run over the tree found.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) files_checked: usize,
    pub(crate) violations: Vec<Violation>,
}

/// Runs every check on the `.rs` files of the workspace at `root`.
///
/// # Errors
///
/// If a directory or a file cannot be read, or a file is not UTF-8.
pub(crate) fn check_tree(root: &Path) -> io::Result<Report> {
    let mut files = Vec::new();
    for dir in CHECKED_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            collect_rs_files(&dir, &mut files)?;
        }
    }
    files.sort();

    let mut violations = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", file.display())))?;
        let path = relative_path(root, file);
        let unsafe_allowed = crate_of(&path) == Some(UNSAFE_CRATE);
        violations.extend(check_source(&path, &text, unsafe_allowed));
    }

    for krate in crate_dirs(root)? {
        if krate == UNSAFE_CRATE {
            continue;
        }
        let mut roots = 0;
        for name in ["src/lib.rs", "src/main.rs"] {
            let file = root.join(&krate).join(name);
            if file.is_file() {
                roots += 1;
                let text = fs::read_to_string(&file)?;
                violations.extend(check_forbid_unsafe(&format!("{krate}/{name}"), &text));
            }
        }
        if roots == 0 {
            violations.push(Violation {
                path: krate.clone(),
                line: 0,
                message: "crate has neither src/lib.rs nor src/main.rs to hold \
                          `#![forbid(unsafe_code)]`"
                    .to_owned(),
            });
        }
    }

    Ok(Report {
        files_checked: files.len(),
        violations,
    })
}

/// Appends every `.rs` file below `dir` to `out`, skipping `target` directories.
fn collect_rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if entry.file_name() != "target" {
                collect_rs_files(&path, out)?;
            }
        } else if file_type.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The crates of the workspace, as paths relative to `root`: `xtask` and each directory of
/// `crates/` that has a `Cargo.toml`.
fn crate_dirs(root: &Path) -> io::Result<Vec<String>> {
    let mut crates = Vec::new();
    if root.join("xtask/Cargo.toml").is_file() {
        crates.push("xtask".to_owned());
    }
    let crates_dir = root.join("crates");
    if crates_dir.is_dir() {
        for entry in fs::read_dir(&crates_dir)? {
            let entry = entry?;
            if entry.path().join("Cargo.toml").is_file() {
                crates.push(format!("crates/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    crates.sort();
    Ok(crates)
}

/// `file` relative to `root`, with `/` separators whatever the platform.
fn relative_path(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// The crate directory a relative path belongs to: `xtask` or `crates/<name>`.
fn crate_of(path: &str) -> Option<&str> {
    if path.starts_with("xtask/") {
        return Some("xtask");
    }
    let rest = path.strip_prefix("crates/")?;
    let name_len = rest.find('/')?;
    Some(&path[.."crates/".len() + name_len])
}

/// Checks one file's text. `path` is only used to name it in violations; `unsafe_allowed` says
/// whether the file belongs to the one crate that may use `unsafe`.
pub(crate) fn check_source(path: &str, text: &str, unsafe_allowed: bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    let violation = |line: usize, message: &str| Violation {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };

    if !text.starts_with("//!") {
        violations.push(violation(
            1,
            "file does not start with a `//!` line saying what it is for",
        ));
    }

    let code = code_only(text);
    let original_lines: Vec<&str> = text.lines().collect();
    let code_lines: Vec<&str> = code.lines().collect();
    debug_assert_eq!(original_lines.len(), code_lines.len());

    for (offset, kind) in unsafe_uses(&code) {
        // `code_only` keeps every byte offset and newline, so lines match the original's.
        let line = code[..offset].matches('\n').count();
        if !unsafe_allowed {
            violations.push(violation(
                line + 1,
                &format!("`unsafe` outside {UNSAFE_CRATE}: only the ring may use it"),
            ));
            continue;
        }
        match kind {
            UnsafeKind::Block | UnsafeKind::Impl | UnsafeKind::ExternBlock => {
                if !has_safety_comment(&original_lines, &code_lines, line) {
                    violations.push(violation(
                        line + 1,
                        &format!(
                            "{} without a `// SAFETY:` comment on or just above it",
                            kind.describe()
                        ),
                    ));
                }
            }
            UnsafeKind::Fn | UnsafeKind::Trait => {
                if !has_safety_doc(&original_lines, &code_lines, line) {
                    violations.push(violation(
                        line + 1,
                        &format!("{} without a `# Safety` doc section", kind.describe()),
                    ));
                }
            }
            UnsafeKind::Other => {}
        }
    }
    violations
}

/// Checks that a crate root of a crate other than the ring forbids `unsafe` code.
pub(crate) fn check_forbid_unsafe(path: &str, text: &str) -> Option<Violation> {
    let code = code_only(text);
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let forbids = compact.match_indices("#![forbid(").any(|(start, _)| {
        let args = &compact[start + "#![forbid(".len()..];
        let args = &args[..args.find(")]").unwrap_or(args.len())];
        args.split(',').any(|lint| lint == "unsafe_code")
    });
    (!forbids).then(|| Violation {
        path: path.to_owned(),
        line: 1,
        message: format!(
            "crate root without `#![forbid(unsafe_code)]` (only {UNSAFE_CRATE} may use `unsafe`)"
        ),
    })
}

/// What follows an `unsafe` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnsafeKind {
    /// `unsafe { ... }`
    Block,
    /// `unsafe impl ...`
    Impl,
    /// `unsafe extern "C" { ... }`
    ExternBlock,
    /// `unsafe fn name` or `unsafe extern "C" fn name`: a declaration, not a pointer type.
    Fn,
    /// `unsafe trait ...`
    Trait,
    /// Anything else: `unsafe fn(..)` pointer types, `#[unsafe(no_mangle)]`, ...
    Other,
}

impl UnsafeKind {
    fn describe(self) -> &'static str {
        match self {
            UnsafeKind::Block => "`unsafe` block",
            UnsafeKind::Impl => "`unsafe impl`",
            UnsafeKind::ExternBlock => "`unsafe extern` block",
            UnsafeKind::Fn => "`unsafe fn`",
            UnsafeKind::Trait => "`unsafe trait`",
            UnsafeKind::Other => "`unsafe`",
        }
    }
}

/// Every `unsafe` keyword in `code` (already passed through [`code_only`]), with its byte
/// offset and what it introduces.
fn unsafe_uses(code: &str) -> Vec<(usize, UnsafeKind)> {
    let bytes = code.as_bytes();
    let mut uses = Vec::new();
    for (offset, _) in code.match_indices("unsafe") {
        let end = offset + "unsafe".len();
        let word_start = offset == 0 || !is_ident_byte(bytes[offset - 1]);
        let word_end = end == bytes.len() || !is_ident_byte(bytes[end]);
        if word_start && word_end {
            uses.push((offset, classify(&code[end..])));
        }
    }
    uses
}

/// What the code right after an `unsafe` keyword makes of it.
fn classify(after: &str) -> UnsafeKind {
    let rest = after.trim_start();
    if rest.starts_with('{') {
        return UnsafeKind::Block;
    }
    if strip_keyword(rest, "impl").is_some() {
        return UnsafeKind::Impl;
    }
    if strip_keyword(rest, "trait").is_some() {
        return UnsafeKind::Trait;
    }
    let mut rest = rest;
    if let Some(after_extern) = strip_keyword(rest, "extern") {
        rest = after_extern.trim_start();
        // The ABI string; `code_only` kept its quotes.
        if let Some(abi) = rest.strip_prefix('"') {
            rest = abi
                .find('"')
                .map_or("", |close| &abi[close + 1..])
                .trim_start();
        }
        if rest.starts_with('{') {
            return UnsafeKind::ExternBlock;
        }
    }
    match strip_keyword(rest, "fn") {
        // A name after `fn` declares a function; a `(` makes it a function pointer type.
        Some(name) if name.trim_start().starts_with(is_ident_start) => UnsafeKind::Fn,
        _ => UnsafeKind::Other,
    }
}

/// `text` after the keyword `word`, if it starts with that keyword as a whole word.
fn strip_keyword<'t>(text: &'t str, word: &str) -> Option<&'t str> {
    let rest = text.strip_prefix(word)?;
    match rest.bytes().next() {
        Some(b) if is_ident_byte(b) => None,
        _ => Some(rest),
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether the `unsafe` on line `line` (0-based) has a `// SAFETY:` comment on the same line or
/// in the comment just above it. A few lines of code may stand in between (a multi-line
/// statement), but not a blank line, the end of another statement, or another `unsafe`.
fn has_safety_comment(original: &[&str], code: &[&str], line: usize) -> bool {
    if original[line].contains("// SAFETY:") {
        return true;
    }
    let mut code_lines_left = CODE_LINES_BETWEEN;
    for index in (line.saturating_sub(LOOKBACK_LINES)..line).rev() {
        let text = original[index].trim();
        let code_text = code[index].trim();
        if text.is_empty() {
            return false;
        }
        if code_text.is_empty() {
            // A comment line (or one inside a block comment or a multi-line string).
            if text.contains("// SAFETY:") {
                return true;
            }
            continue;
        }
        if code_text.starts_with("#[") {
            // An attribute on the item.
            continue;
        }
        let ends_statement = code_text.ends_with([';', '{', '}']);
        if ends_statement || !unsafe_uses(code_text).is_empty() || code_lines_left == 0 {
            return false;
        }
        code_lines_left -= 1;
    }
    false
}

/// Whether the item declared on line `line` (0-based) has a `# Safety` heading in the doc
/// comment above it. Attributes, including multi-line ones, may stand between.
fn has_safety_doc(original: &[&str], code: &[&str], line: usize) -> bool {
    let mut code_lines_left = CODE_LINES_BETWEEN;
    for index in (line.saturating_sub(LOOKBACK_LINES)..line).rev() {
        let text = original[index].trim();
        let code_text = code[index].trim();
        if let Some(doc) = text.strip_prefix("///") {
            let heading = doc.trim_start().trim_start_matches('#');
            if doc.trim_start().starts_with('#') && heading.trim() == "Safety" {
                return true;
            }
            continue;
        }
        if text.is_empty() {
            return false;
        }
        if code_text.is_empty() || code_text.starts_with("#[") {
            continue;
        }
        let ends_item = code_text.ends_with([';', '{', '}']);
        if ends_item || code_lines_left == 0 {
            return false;
        }
        code_lines_left -= 1;
    }
    false
}

/// `src` with the contents of comments and of string, byte-string and character literals
/// replaced by spaces. Newlines and every byte offset are kept, so line numbers and positions in
/// the result are those of `src`; the quotes of literals are kept too.
///
/// Handles nested block comments, escapes, raw strings (`r#"..."#`, `br"..."`, `cr"..."`) and
/// tells character literals (`'a'`, `'\''`) from lifetimes and labels (`'a`).
pub(crate) fn code_only(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = bytes.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = find_from(bytes, i, b"\n").unwrap_or(bytes.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(bytes, i);
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let (content_end, end) = quoted_end(bytes, i + 1, b'"');
                blank(&mut out, i + 1, content_end);
                i = end;
            }
            b'\'' => {
                if let Some((content_end, end)) = char_literal_end(src, i) {
                    blank(&mut out, i + 1, content_end);
                    i = end;
                } else {
                    // A lifetime or a label: ordinary code.
                    i += 1;
                }
            }
            b if is_ident_byte(b) => {
                if let Some((content, end)) = raw_string_at(bytes, i) {
                    blank(&mut out, content.0, content.1);
                    i = end;
                } else {
                    // Skip the whole identifier, so that `r` inside `bar"` is not a prefix.
                    while i < bytes.len() && is_ident_byte(bytes[i]) {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes were replaced, each multi-byte character either whole or not at all.
    String::from_utf8(out).unwrap_or_else(|_| src.to_owned())
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The end (exclusive) of the block comment starting at `start`, which may nest.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of the content and the end of the whole (past the closing quote) of a literal whose
/// content starts at `from`, honouring backslash escapes. Both are exclusive; an unterminated
/// literal runs to the end of the text.
fn quoted_end(bytes: &[u8], from: usize, quote: u8) -> (usize, usize) {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return (i, i + 1),
            _ => i += 1,
        }
    }
    (bytes.len(), bytes.len())
}

/// If the `'` at `start` opens a character literal, the end of its content and its own end (as
/// [`quoted_end`]); `None` for a lifetime or a label.
fn char_literal_end(src: &str, start: usize) -> Option<(usize, usize)> {
    let bytes = src.as_bytes();
    match bytes.get(start + 1)? {
        b'\\' => Some(quoted_end(bytes, start + 1, b'\'')),
        _ => {
            let c = src[start + 1..].chars().next()?;
            let close = start + 1 + c.len_utf8();
            (bytes.get(close) == Some(&b'\'')).then_some((close, close + 1))
        }
    }
}

/// If a raw string literal (`r"`, `r#"`, `br"`, `cr#"`, ...) starts at `start`, the byte range
/// of its content and its end (exclusive).
fn raw_string_at(bytes: &[u8], start: usize) -> Option<((usize, usize), usize)> {
    let mut i = start;
    if matches!(bytes[i], b'b' | b'c') {
        i += 1;
    }
    if bytes.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = bytes[i..].iter().take_while(|&&b| b == b'#').count();
    i += hashes;
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let content_start = i + 1;
    let mut closing = vec![b'"'];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    match find_from(bytes, content_start, &closing) {
        Some(close) => Some(((content_start, close), close + closing.len())),
        None => Some(((content_start, bytes.len()), bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `src` as a file of the ring (`unsafe_allowed`) or of another crate, and compares
    /// the violations, rendered as `line: message`, with `expected`.
    fn check(src: &str, unsafe_allowed: bool, expected: &[&str]) {
        let actual: Vec<String> = check_source("x.rs", src, unsafe_allowed)
            .iter()
            .map(|v| format!("{}: {}", v.line, v.message))
            .collect();
        assert_eq!(actual, expected, "for source:\n{src}");
    }

    const SAFETY_COMMENT_MISSING: &str =
        "`unsafe` block without a `// SAFETY:` comment on or just above it";

    /// The whole tree obeys the rules. This is what makes `cargo test` enforce them.
    #[test]
    fn tidy() {
        let report = check_tree(&crate::project_root()).expect("the source tree is readable");
        assert!(report.files_checked > 0, "tidy found no files to check");
        let listing: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
        assert!(
            listing.is_empty(),
            "tidy found {} violation(s):\n{}",
            listing.len(),
            listing.join("\n")
        );
    }

    /// A small workspace on disk: what `check_tree` walks, skips, and asks of crate roots.
    #[test]
    fn check_tree_on_a_small_workspace() {
        let root = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let files = [
            ("crates/ring/Cargo.toml", ""),
            (
                "crates/ring/src/lib.rs",
                "//! Ring.\nfn f(p: *const u8) -> u8 {\n    unsafe { *p }\n}\n",
            ),
            ("crates/good/Cargo.toml", ""),
            (
                "crates/good/src/lib.rs",
                "//! Good.\n#![forbid(unsafe_code)]\n",
            ),
            (
                "crates/good/tests/t.rs",
                "//! A test.\nfn f() { unsafe {} }\n",
            ),
            ("crates/lax/Cargo.toml", ""),
            ("crates/lax/src/main.rs", "//! Lax.\nfn main() {}\n"),
            (
                "crates/lax/target/debug/build/gen.rs",
                "no header, unsafe {}\n",
            ),
            ("xtask/Cargo.toml", ""),
            ("xtask/src/main.rs", "//! Tasks.\n#![forbid(unsafe_code)]\n"),
            ("xtask/src/notes.txt", "unsafe {}\n"),
            ("xtask/src/plain.rs", "fn f() {}\n"),
        ];
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let report = check_tree(&root);
        fs::remove_dir_all(&root).unwrap();
        let report = report.unwrap();

        assert_eq!(report.files_checked, 6);
        let listing: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            listing,
            [
                "crates/good/tests/t.rs:2: `unsafe` outside crates/ring: only the ring may use it",
                "crates/ring/src/lib.rs:3: `unsafe` block without a `// SAFETY:` comment on or just \
             above it",
                "xtask/src/plain.rs:1: file does not start with a `//!` line saying what it is for",
                "crates/lax/src/main.rs:1: crate root without `#![forbid(unsafe_code)]` (only \
             crates/ring may use `unsafe`)",
            ]
        );
    }

    #[test]
    fn a_tidy_file_passes() {
        let src = r#"//! A tidy file.

/// Reads a slot.
///
/// # Safety
///
/// The caller must ensure that `p` is valid.
pub unsafe fn read(p: *const u8) -> u8 {
    // SAFETY: the caller promised `p` is valid,
    // as the doc says.
    unsafe { *p }
}

fn other(p: *const u8) -> u8 {
    // SAFETY: a multi-line statement may stand between.
    let x = helper(
        unsafe { *p },
    );
    let y = unsafe { *p }; // SAFETY: on the same line.
    x + y
}

struct S;

// SAFETY: S holds nothing.
#[allow(dead_code)]
unsafe impl Send for S {}

type F = unsafe fn(*const u8) -> u8;
"#;
        check(src, true, &[]);
    }

    #[test]
    fn missing_module_doc() {
        check(
            "fn main() {}\n",
            true,
            &["1: file does not start with a `//!` line saying what it is for"],
        );
        check(
            "// a plain comment\n",
            true,
            &["1: file does not start with a `//!` line saying what it is for"],
        );
        check(
            "/// an item doc\nfn f() {}\n",
            true,
            &["1: file does not start with a `//!` line saying what it is for"],
        );
        check(
            "",
            true,
            &["1: file does not start with a `//!` line saying what it is for"],
        );
    }

    #[test]
    fn unsafe_block_without_safety_comment() {
        check(
            "//! x\nfn f(p: *const u8) -> u8 {\n    unsafe { *p }\n}\n",
            true,
            &[&format!("3: {SAFETY_COMMENT_MISSING}")],
        );
        // A comment that is not a SAFETY comment does not count.
        check(
            "//! x\nfn f(p: *const u8) -> u8 {\n    // read it\n    unsafe { *p }\n}\n",
            true,
            &[&format!("4: {SAFETY_COMMENT_MISSING}")],
        );
        // Nor does one in the middle of a word, or a `SAFETY` without the colon.
        check(
            "//! x\nfn f(p: *const u8) -> u8 {\n    // SAFETY it's fine\n    unsafe { *p }\n}\n",
            true,
            &[&format!("4: {SAFETY_COMMENT_MISSING}")],
        );
    }

    #[test]
    fn safety_comment_belongs_to_one_block() {
        let src = "//! x
fn f(p: *const u8) -> u8 {
    // SAFETY: for the first block only.
    let a = unsafe { *p };
    let b = unsafe { *p };
    a + b
}
";
        check(src, true, &[&format!("5: {SAFETY_COMMENT_MISSING}")]);
    }

    #[test]
    fn safety_comment_must_be_close() {
        // A blank line cuts the comment off from the block.
        let src = "//! x
fn f(p: *const u8) -> u8 {
    // SAFETY: detached.

    unsafe { *p }
}
";
        check(src, true, &[&format!("5: {SAFETY_COMMENT_MISSING}")]);
        // So does the end of another statement.
        let src = "//! x
fn f(p: *const u8) -> u8 {
    // SAFETY: about something else.
    g();
    unsafe { *p }
}
";
        check(src, true, &[&format!("5: {SAFETY_COMMENT_MISSING}")]);
        // And too many lines of code.
        let src = "//! x
fn f(p: *const u8) -> u8 {
    // SAFETY: too far away.
    g(
        1,
        2,
        3,
        unsafe { *p },
    )
}
";
        check(src, true, &[&format!("8: {SAFETY_COMMENT_MISSING}")]);
    }

    #[test]
    fn unsafe_impl_without_safety_comment() {
        check(
            "//! x\nstruct S;\n/// Docs are not a SAFETY comment.\nunsafe impl Sync for S {}\n",
            true,
            &["4: `unsafe impl` without a `// SAFETY:` comment on or just above it"],
        );
    }

    #[test]
    fn unsafe_fn_without_safety_doc() {
        check(
            "//! x\n/// Reads.\n///\n/// Safety: not a heading.\npub unsafe fn f() {}\n",
            true,
            &["5: `unsafe fn` without a `# Safety` doc section"],
        );
        check(
            "//! x\n// # Safety in a plain comment is not a doc.\nunsafe fn f() {}\n",
            true,
            &["3: `unsafe fn` without a `# Safety` doc section"],
        );
        // The `# Safety` of the previous item does not count.
        let src = "//! x
/// # Safety
///
/// None needed.
pub unsafe fn f() {}
pub unsafe fn g() {}
";
        check(
            src,
            true,
            &["6: `unsafe fn` without a `# Safety` doc section"],
        );
        // Trait methods and unsafe traits too.
        check(
            "//! x\n/// # Safety\n/// Yes.\nunsafe trait T {\n    unsafe fn f(&self);\n}\n",
            true,
            &["5: `unsafe fn` without a `# Safety` doc section"],
        );
    }

    #[test]
    fn safety_doc_through_attributes() {
        let src = "//! x
/// Does it.
///
/// # Safety
///
/// The caller must ensure nothing.
#[inline]
#[cfg(any(
    unix,
    windows,
))]
pub(crate) const unsafe fn f() {}
";
        check(src, true, &[]);
    }

    #[test]
    fn unsafe_outside_the_ring() {
        let message = "`unsafe` outside crates/ring: only the ring may use it";
        // Even well documented.
        check(
            "//! x\nfn f(p: *const u8) -> u8 {\n    // SAFETY: fine.\n    unsafe { *p }\n}\n",
            false,
            &[&format!("4: {message}")],
        );
        check(
            "//! x\ntype F = unsafe fn();\n",
            false,
            &[&format!("2: {message}")],
        );
        // Words that merely contain it, comments and strings are not code.
        let src = r##"//! x
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
// unsafe { in a comment }
/* unsafe /* nested */ unsafe */
/// unsafe fn in a doc
fn check_unsafe_blocks() -> (&'static str, &'static str, char, char) {
    ("unsafe {", r#"unsafe impl "quoted" "#, '"', '\'')
}
const NOT_UNSAFE: &str = "\" unsafe";
"##;
        check(src, false, &[]);
    }

    #[test]
    fn forbid_unsafe_code_in_crate_roots() {
        assert_eq!(
            check_forbid_unsafe("lib.rs", "//! x\n#![forbid(unsafe_code)]\n"),
            None
        );
        assert_eq!(
            check_forbid_unsafe("lib.rs", "//! x\n#![forbid(missing_docs, unsafe_code)]\n"),
            None
        );
        let missing = |text: &str| check_forbid_unsafe("lib.rs", text).is_some();
        assert!(missing("//! x\n"));
        assert!(missing("//! x\n#![deny(unsafe_code)]\n"));
        assert!(missing("//! x\n// #![forbid(unsafe_code)]\n"));
        assert!(missing(
            "//! x\nconst S: &str = \"#![forbid(unsafe_code)]\";\n"
        ));
    }

    #[test]
    fn code_only_blanks_comments_and_literals() {
        let cases = [
            ("a // b\nc", "a     \nc"),
            ("a /* b /* c */ d */ e", "a                   e"),
            (r#"f("x\"y", 'z')"#, r#"f("    ", ' ')"#),
            (r##"r#"a"b"# + x"##, r##"r#"   "# + x"##),
            (r#"br"\" + y"#, r#"br" " + y"#),
            (
                "fn f<'a>(x: &'a u8) -> char { 'é' }",
                "fn f<'a>(x: &'a u8) -> char { '  ' }",
            ),
            (r"'\n' '\'' 'x'", r"'  ' '  ' ' '"),
            (
                "'outer: loop { break 'outer; }",
                "'outer: loop { break 'outer; }",
            ),
            ("\"line\nbreak\"", "\"    \n     \""),
            ("bar\"q\"", "bar\" \""),
        ];
        for (src, expected) in cases {
            let actual = code_only(src);
            assert_eq!(actual, expected, "for {src:?}");
            assert_eq!(actual.len(), src.len(), "offsets must be kept for {src:?}");
        }
    }

    #[test]
    fn classify_what_follows_unsafe() {
        let cases = [
            (" { x }", UnsafeKind::Block),
            ("\n    {", UnsafeKind::Block),
            (" impl<T> Send for X<T> {}", UnsafeKind::Impl),
            (" fn read()", UnsafeKind::Fn),
            (" extern \"C\" fn cb()", UnsafeKind::Fn),
            (" extern \"C\" {", UnsafeKind::ExternBlock),
            (" trait Zeroable {}", UnsafeKind::Trait),
            (" fn(u8) -> u8", UnsafeKind::Other),
            ("(no_mangle)", UnsafeKind::Other),
            (" implement", UnsafeKind::Other),
        ];
        for (after, expected) in cases {
            assert_eq!(classify(after), expected, "for `unsafe{after}`");
        }
    }

    #[test]
    fn crate_of_paths() {
        assert_eq!(crate_of("crates/ring/src/lib.rs"), Some("crates/ring"));
        assert_eq!(
            crate_of("crates/ring-extra/src/lib.rs"),
            Some("crates/ring-extra")
        );
        assert_eq!(crate_of("xtask/src/main.rs"), Some("xtask"));
        assert_eq!(crate_of("crates/stray.rs"), None);
    }
}
