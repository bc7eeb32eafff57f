//! uci — the UCI file syntax, without meaning.
//!
//! DESCRIPTION
//!   Splits a UCI file (the format of OpenWrt's `/etc/config/*`, read and
//!   written by `uci` and LuCI) into sections and options. Knows nothing of
//!   masqmail's option names: `schema` gives them meaning.
//!
//!   The grammar, as libuci reads it:
//!
//!   ```text
//!   package NAME                      accepted and ignored
//!   config TYPE ['NAME']              starts a section
//!   option NAME VALUE                 a single value
//!   list NAME VALUE                   one more value of a list
//!   ```
//!
//!   A token is made of adjacent parts, concatenated: unquoted text,
//!   `'single quoted'` (no escapes) and `"double quoted"` (a backslash takes
//!   the next character literally). Outside single quotes a backslash at the
//!   end of a line joins the next line; quoted parts may span lines and keep
//!   the newline. Outside quotes `#` starts a comment that runs to the end
//!   of the line, also in the middle of a word (as in libuci: `a#b` is `a`).
//!   Names of sections, types and options are `[A-Za-z0-9_]+`.
//!
//!   Repeated options follow uci: a second `option x` replaces the first; a
//!   `list x` after `option x` turns it into a list that keeps the old value;
//!   an `option x` after `list x` replaces the whole list.
//!
//! SECURITY
//!   The input is bounded ([`MAX_FILE`], [`MAX_VALUE`]) and never makes the
//!   parser panic: every problem is an [`UciError`] with its line number,
//!   and parsing goes on at the next line so that all errors are reported.

use std::fmt;

/// Largest file accepted, in bytes.
pub const MAX_FILE: usize = 1024 * 1024;
/// Largest single value (or name), in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// `option` or `list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Option,
    List,
}

impl Kind {
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Option => "option",
            Kind::List => "list",
        }
    }
}

/// One value and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub line: usize,
}

/// An option or list of a section, after uci's merging of repeated names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub kind: Kind,
    /// One value for `option`, one per `list` line for a list.
    pub values: Vec<Value>,
    /// The line of the statement that set it (the first, for a list).
    pub line: usize,
}

/// A `config TYPE ['NAME']` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub section_type: String,
    pub name: Option<String>,
    pub line: usize,
    pub options: Vec<UciOption>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// A syntax error. `line` is 0 for a problem with the whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UciError {
    pub line: usize,
    pub msg: String,
    pub hint: Option<String>,
}

impl fmt::Display for UciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.msg)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// The result of parsing: the sections that could be read, and every error.
/// Sections are returned even when there are errors, so that the schema can
/// report its own errors in the same run.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub sections: Vec<Section>,
    pub errors: Vec<UciError>,
}

/// True for a valid UCI name: `[A-Za-z0-9_]+`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parse a whole file. Bytes that are not UTF-8 are an error at their line
/// (and are replaced, so that the rest of the file is still checked).
pub fn parse(input: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    if input.len() > MAX_FILE {
        out.errors.push(UciError {
            line: 0,
            msg: format!(
                "file is too large ({} bytes, at most {} are read)",
                input.len(),
                MAX_FILE
            ),
            hint: None,
        });
        return out;
    }
    let text = match std::str::from_utf8(input) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(e) => {
            let before = input.get(..e.valid_up_to()).unwrap_or_default();
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            out.errors.push(UciError {
                line,
                msg: "the file is not valid UTF-8".into(),
                hint: Some("save the file as UTF-8".into()),
            });
            String::from_utf8_lossy(input)
        }
    };
    let mut p = Parser {
        lex: Lexer::new(&text),
        out,
        current: Current::None,
    };
    p.run();
    p.out
}

/// Which section options go to.
enum Current {
    /// Before the first `config`.
    None,
    /// After a `config` line that had an error: its options are skipped
    /// without further errors.
    Broken,
    Section(usize),
}

struct Parser<'a> {
    lex: Lexer<'a>,
    out: Parsed,
    current: Current,
}

impl Parser<'_> {
    fn error(&mut self, line: usize, msg: String, hint: Option<&str>) {
        self.out.errors.push(UciError {
            line,
            msg,
            hint: hint.map(str::to_string),
        });
    }

    fn run(&mut self) {
        loop {
            let mut stmt = self.lex.statement(&mut self.out.errors);
            if stmt.eof && stmt.tokens.is_empty() {
                break;
            }
            if stmt.broken {
                // The statement was cut short by an error already reported:
                // its meaning is unknown, so its options are skipped.
                if stmt.tokens.first().is_some_and(|t| t.text == "config") {
                    self.current = Current::Broken;
                }
            } else if !stmt.tokens.is_empty() {
                self.statement(&mut stmt.tokens);
            }
            if stmt.eof {
                break;
            }
        }
    }

    fn statement(&mut self, tokens: &mut [Token]) {
        let [kw, args @ ..] = tokens else { return };
        let line = kw.line;
        match kw.text.as_str() {
            "package" => {
                if args.len() != 1 {
                    self.error(line, "'package' takes one name".into(), None);
                }
            }
            "config" => self.config(line, args),
            "option" => self.option(line, Kind::Option, args),
            "list" => self.option(line, Kind::List, args),
            other => {
                let msg = format!("unknown keyword '{}'", shorten(other));
                self.error(
                    line,
                    msg,
                    Some("a line starts with config, option, list or package"),
                );
                // Don't let options after a garbled `config` line land in
                // the section before it.
                if other.eq_ignore_ascii_case("config") {
                    self.current = Current::Broken;
                }
            }
        }
    }

    fn config(&mut self, line: usize, args: &mut [Token]) {
        self.current = Current::Broken;
        let (ty, name) = match args {
            [] => {
                self.error(
                    line,
                    "'config' needs a section type".into(),
                    Some("config TYPE ['NAME']"),
                );
                return;
            }
            [ty] => (ty, None),
            [ty, n] => (ty, Some(n)),
            _ => {
                self.error(
                    line,
                    "too many words after 'config'".into(),
                    Some("config TYPE ['NAME']"),
                );
                return;
            }
        };
        if !valid_name(&ty.text) {
            let msg = format!("bad section type '{}'", shorten(&ty.text));
            self.error(line, msg, Some("use only letters, digits and '_'"));
            return;
        }
        if let Some(n) = &name {
            if !valid_name(&n.text) {
                let msg = format!("bad section name '{}'", shorten(&n.text));
                self.error(line, msg, Some("use only letters, digits and '_'"));
                return;
            }
        }
        self.out.sections.push(Section {
            section_type: std::mem::take(&mut ty.text),
            name: name.map(|t| std::mem::take(&mut t.text)),
            line,
            options: Vec::new(),
        });
        self.current = Current::Section(self.out.sections.len() - 1);
    }

    fn option(&mut self, line: usize, kind: Kind, args: &mut [Token]) {
        let kw = kind.keyword();
        let (name, value) = match args {
            [] => {
                self.error(line, format!("'{kw}' needs a name and a value"), None);
                return;
            }
            [name] => {
                let msg = format!("{kw} '{}' has no value", shorten(&name.text));
                self.error(line, msg, Some("write '' for an empty value"));
                return;
            }
            [name, value] => (name, value),
            [name, ..] => {
                let msg = format!("too many values for {kw} '{}'", shorten(&name.text));
                self.error(
                    line,
                    msg,
                    Some("quote a value that contains spaces; use one 'list' line per value"),
                );
                return;
            }
        };
        if !valid_name(&name.text) {
            let msg = format!("bad {kw} name '{}'", shorten(&name.text));
            self.error(line, msg, Some("use only letters, digits and '_'"));
            return;
        }
        let idx = match self.current {
            Current::Section(i) => i,
            Current::Broken => return,
            Current::None => {
                let msg = format!("{kw} '{}' outside of a section", name.text);
                self.error(
                    line,
                    msg,
                    Some("start a section first, e.g. config masqmail 'main'"),
                );
                return;
            }
        };
        let Some(section) = self.out.sections.get_mut(idx) else {
            return;
        };
        let value = Value {
            text: std::mem::take(&mut value.text),
            line: value.line,
        };
        let existing = section.options.iter_mut().find(|o| o.name == name.text);
        match (kind, existing) {
            (Kind::List, Some(o)) => {
                // uci: a list after an option of the same name keeps the old
                // value as the first element.
                o.kind = Kind::List;
                o.values.push(value);
            }
            (Kind::Option, Some(o)) => {
                // uci: the last option wins (and replaces a list).
                o.kind = Kind::Option;
                o.values = vec![value];
                o.line = line;
            }
            (_, None) => section.options.push(UciOption {
                name: std::mem::take(&mut name.text),
                kind,
                values: vec![value],
                line,
            }),
        }
    }
}

/// Cut a name for an error message, on a character boundary.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((i, _)) => {
            let mut t = s.get(..i).unwrap_or_default().to_string();
            t.push('…');
            t
        }
    }
}

#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
}

/// The tokens of one statement, and what went wrong reading them.
#[derive(Debug, Default)]
struct Statement {
    tokens: Vec<Token>,
    /// An error cut the statement short: don't interpret it.
    broken: bool,
    /// The input ended.
    eof: bool,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// Read the tokens up to the end of the (logical) line; errors go to
    /// `errors`.
    fn statement(&mut self, errors: &mut Vec<UciError>) -> Statement {
        let mut st = Statement::default();
        loop {
            match self.chars.peek().copied() {
                None => {
                    st.eof = true;
                    return st;
                }
                Some('\n') => {
                    self.bump();
                    return st;
                }
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('#') => self.skip_comment(),
                Some(_) => match self.token() {
                    Ok(t) => st.tokens.push(t),
                    Err((line, msg, at_eof)) => {
                        errors.push(UciError {
                            line,
                            msg,
                            hint: None,
                        });
                        st.broken = true;
                        if at_eof {
                            st.eof = true;
                            return st;
                        }
                        // Resynchronise at the next line.
                        self.skip_comment();
                    }
                },
            }
        }
    }

    /// Skip to the end of the line, leaving the newline.
    fn skip_comment(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// One token: adjacent unquoted, single and double quoted parts.
    /// Errors carry the line, the message and whether the input ended.
    fn token(&mut self) -> Result<Token, (usize, String, bool)> {
        let start = self.line;
        let mut text = String::new();
        let mut too_long = false;
        let mut push = |text: &mut String, c: char| {
            if text.len() + c.len_utf8() > MAX_VALUE {
                too_long = true;
            } else {
                text.push(c);
            }
        };
        while let Some(&c) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | '#' => break,
                '\'' => {
                    let qline = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err((qline, "unterminated ' quote".into(), true));
                            }
                            Some('\'') => break,
                            Some(c) => push(&mut text, c),
                        }
                    }
                }
                '"' => {
                    let qline = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err((qline, "unterminated \" quote".into(), true));
                            }
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                None => {
                                    return Err((qline, "unterminated \" quote".into(), true));
                                }
                                // A backslash before the line end joins lines.
                                Some('\n') => {}
                                Some(c) => push(&mut text, c),
                            },
                            Some(c) => push(&mut text, c),
                        }
                    }
                }
                '\\' => {
                    self.bump();
                    match self.bump() {
                        None | Some('\n') => {}
                        Some('\r') if self.chars.peek() == Some(&'\n') => {
                            self.bump();
                        }
                        Some(c) => push(&mut text, c),
                    }
                }
                c => {
                    self.bump();
                    push(&mut text, c);
                }
            }
        }
        if too_long {
            let msg = format!("value longer than {} bytes", MAX_VALUE);
            return Err((start, msg, self.chars.peek().is_none()));
        }
        Ok(Token { text, line: start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(input: &str) -> Vec<(String, Kind, Vec<String>)> {
        let p = parse(input.as_bytes());
        assert!(p.errors.is_empty(), "{input:?}: {:?}", p.errors);
        p.sections
            .iter()
            .flat_map(|s| s.options.iter())
            .map(|o| {
                (
                    o.name.clone(),
                    o.kind,
                    o.values.iter().map(|v| v.text.clone()).collect(),
                )
            })
            .collect()
    }

    fn one(input: &str) -> String {
        let full = format!("config t\n\toption v {input}\n");
        let v = values(&full);
        assert_eq!(v.len(), 1, "{input:?}");
        v[0].2.join("|")
    }

    #[test]
    fn quoting_forms() {
        let table: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("'single quoted'", "single quoted"),
            ("\"double quoted\"", "double quoted"),
            ("'a'\"b\"c", "abc"),
            ("a'b c'd", "ab cd"),
            ("''", ""),
            ("\"\"", ""),
            ("'no \\escape'", "no \\escape"),
            ("\"esc \\\"q\\\" \\\\ \\n\"", "esc \"q\" \\ n"),
            ("\"it's\"", "it's"),
            ("'it'\\''s'", "it's"),
            ("'#not a comment'", "#not a comment"),
            ("\"#not either\"", "#not either"),
            ("a\\ b", "a b"),
            ("'x' # comment", "x"),
            ("x# comment", "x"),
            ("'tab\there'", "tab\there"),
            ("'ünïcödé'", "ünïcödé"),
            ("'line1\nline2'", "line1\nline2"),
            ("\"line1\nline2\"", "line1\nline2"),
            ("\"joined \\\nline\"", "joined line"),
            ("joined\\\nline", "joinedline"),
        ];
        for (input, want) in table {
            assert_eq!(one(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn structure() {
        let input = "\
# a comment
package masqmail

config masqmail 'main'   # trailing comment
\toption host_name 'box.example'
  list local_hosts localhost
\tlist local_hosts \"box.example\"

config route isp
\toption mail_host 'smtp.example.net:587'
config alias
\toption name root
";
        let p = parse(input.as_bytes());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.sections.len(), 3);
        let s = &p.sections[0];
        assert_eq!(s.section_type, "masqmail");
        assert_eq!(s.name.as_deref(), Some("main"));
        assert_eq!(s.line, 4);
        assert_eq!(s.options[0].line, 5);
        let lh = s.get("local_hosts").expect("local_hosts");
        assert_eq!(lh.kind, Kind::List);
        assert_eq!(lh.line, 6);
        assert_eq!(lh.values[1].line, 7);
        assert_eq!(lh.values[1].text, "box.example");
        assert_eq!(p.sections[1].name.as_deref(), Some("isp"));
        assert_eq!(p.sections[2].name, None);
        assert_eq!(p.sections[2].line, 11);
    }

    #[test]
    fn multi_line_value_keeps_line_numbers() {
        let p = parse(b"config t\noption a 'x\ny\nz'\noption b c\n");
        assert!(p.errors.is_empty());
        let s = &p.sections[0];
        assert_eq!(s.get("a").map(|o| o.line), Some(2));
        assert_eq!(s.get("b").map(|o| o.line), Some(5));
    }

    #[test]
    fn crlf_line_ends() {
        let v = values("config t\r\n\toption a 'b'\r\n\tlist c d\r\n");
        assert_eq!(v[0].2, vec!["b"]);
        assert_eq!(v[1].2, vec!["d"]);
    }

    #[test]
    fn repeated_names_follow_uci() {
        let v = values("config t\noption a 1\noption a 2\n");
        assert_eq!(v, vec![("a".into(), Kind::Option, vec!["2".into()])]);
        let v = values("config t\noption a 1\nlist a 2\n");
        assert_eq!(
            v,
            vec![("a".into(), Kind::List, vec!["1".into(), "2".into()])]
        );
        let v = values("config t\nlist a 1\nlist a 2\noption a 3\n");
        assert_eq!(v, vec![("a".into(), Kind::Option, vec!["3".into()])]);
    }

    #[test]
    fn errors_with_lines() {
        let table: &[(&str, usize, &str)] = &[
            ("config t\noption a 'x\n", 2, "unterminated ' quote"),
            ("config t\noption a \"x\n", 2, "unterminated \" quote"),
            ("config t\noption a \"x\\", 2, "unterminated \" quote"),
            ("option a b\n", 1, "outside of a section"),
            ("config t\noption a\n", 2, "has no value"),
            ("config t\nlist a\n", 2, "has no value"),
            ("config t\noption\n", 2, "needs a name"),
            ("config t\noption a b c\n", 2, "too many values"),
            ("config t\noption a-b c\n", 2, "bad option name"),
            ("config t\nlist 'a b' c\n", 2, "bad list name"),
            ("config\n", 1, "needs a section type"),
            ("config t-1\n", 1, "bad section type"),
            ("config t 'isp-1'\n", 1, "bad section name"),
            ("config t a b\n", 1, "too many words"),
            ("\n\nfoo bar\n", 3, "unknown keyword 'foo'"),
            ("package\n", 1, "'package' takes one name"),
        ];
        for (input, line, msg) in table {
            let p = parse(input.as_bytes());
            assert_eq!(p.errors.len(), 1, "{input:?}: {:?}", p.errors);
            assert_eq!(p.errors[0].line, *line, "{input:?}");
            assert!(
                p.errors[0].msg.contains(msg),
                "{input:?}: {:?}",
                p.errors[0]
            );
        }
    }

    #[test]
    fn all_errors_are_reported() {
        let input = "option a b\nconfig t\noption x\noption y 1 2\nbogus\noption ok 1\n";
        let p = parse(input.as_bytes());
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
        assert_eq!(p.sections[0].options.len(), 1);
    }

    #[test]
    fn options_after_a_bad_config_line_are_skipped() {
        let p = parse(b"config good\noption a 1\nconfig bad-type\noption b 2\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.sections.len(), 1);
        assert_eq!(p.sections[0].options.len(), 1);
    }

    #[test]
    fn limits() {
        let big = vec![b'#'; MAX_FILE + 1];
        let p = parse(&big);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 0);
        assert!(p.errors[0].msg.contains("too large"));

        let mut input = b"config t\noption a '".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_VALUE + 1));
        input.extend(b"'\noption b c\n");
        let p = parse(&input);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 2);
        assert!(p.errors[0].msg.contains("longer than"));
        assert_eq!(p.sections[0].options.len(), 1);

        let mut input = b"config t\noption a '".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_VALUE));
        input.extend(b"'\n");
        assert!(parse(&input).errors.is_empty());
    }

    #[test]
    fn bad_utf8_is_an_error_at_its_line() {
        let p = parse(b"config t\noption a 'x\xff'\noption b c\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 2);
        assert_eq!(p.sections[0].options.len(), 2);
    }

    #[test]
    fn empty_and_comment_only_files() {
        for input in ["", "\n\n", "# only a comment", "  \t\n# x\n\n"] {
            let p = parse(input.as_bytes());
            assert!(p.errors.is_empty() && p.sections.is_empty(), "{input:?}");
        }
    }
}
