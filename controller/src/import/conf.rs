//! keepalived.conf's syntax: statements of words, some opening a `{ ... }` block, `!` and
//! `#` comments, double-quoted words. Read into a tree with line numbers, so every option
//! the import cannot map is named by where it stands.

/// One statement: its words and, when it opens one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// Line of its first word (1-based).
    pub line: usize,
    /// The keyword and its arguments, quotes removed.
    pub words: Vec<String>,
    /// The statements inside its `{ }`, if it has one.
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// The keyword.
    pub fn key(&self) -> &str {
        &self.words[0]
    }

    /// The `i`-th argument.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }

    /// The statements of its block (none without one).
    pub fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// The statement as written (words joined), for comments.
    pub fn text(&self) -> String {
        let mut t = self.words.join(" ");
        if self.block.is_some() {
            t.push_str(" { ... }");
        }
        t
    }
}

/// What keeps a file from being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct SyntaxError {
    /// 1-based line of the offending statement in the file read.
    pub line: usize,
    /// What the parser expected there.
    pub reason: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Newline,
}

fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, SyntaxError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let mut chars = line.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '!' | '#' => break,
                '{' | '}' => {
                    chars.next();
                    out.push((line_no, if c == '{' { Tok::Open } else { Tok::Close }));
                }
                '"' => {
                    chars.next();
                    let mut w = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some(c) => w.push(c),
                            None => {
                                return Err(SyntaxError {
                                    line: line_no,
                                    reason: "unterminated quoted string".into(),
                                });
                            }
                        }
                    }
                    out.push((line_no, Tok::Word(w)));
                }
                c if c.is_whitespace() => {
                    chars.next();
                }
                _ => {
                    let mut w = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || matches!(c, '{' | '}' | '"') {
                            break;
                        }
                        w.push(c);
                        chars.next();
                    }
                    out.push((line_no, Tok::Word(w)));
                }
            }
        }
        out.push((line_no, Tok::Newline));
    }
    Ok(out)
}

/// Parse a whole file.
pub fn parse(text: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let toks = tokens(text)?;
    let mut pos = 0;
    let stmts = block(&toks, &mut pos, 0)?;
    Ok(stmts)
}

/// Statements until the `}` closing the block opened on `opened` (0: the file's end).
fn block(toks: &[(usize, Tok)], pos: &mut usize, opened: usize) -> Result<Vec<Stmt>, SyntaxError> {
    let mut out: Vec<Stmt> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut line = 0;
    while *pos < toks.len() {
        let (l, t) = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Word(w) => {
                if words.is_empty() {
                    line = *l;
                }
                words.push(w.clone());
            }
            Tok::Newline => {
                if !words.is_empty() {
                    out.push(Stmt { line, words: std::mem::take(&mut words), block: None });
                }
            }
            Tok::Open => {
                let inner = block(toks, pos, *l)?;
                match (words.is_empty(), out.last_mut()) {
                    // `{` on a line of its own opens the block of the statement above.
                    (true, Some(prev)) if prev.block.is_none() => prev.block = Some(inner),
                    (true, _) => {
                        return Err(SyntaxError { line: *l, reason: "`{` without a keyword".into() });
                    }
                    (false, _) => {
                        out.push(Stmt { line, words: std::mem::take(&mut words), block: Some(inner) });
                    }
                }
            }
            Tok::Close => {
                if opened == 0 {
                    return Err(SyntaxError { line: *l, reason: "`}` closes nothing".into() });
                }
                if !words.is_empty() {
                    out.push(Stmt { line, words: std::mem::take(&mut words), block: None });
                }
                return Ok(out);
            }
        }
    }
    if opened != 0 {
        return Err(SyntaxError { line: opened, reason: "this `{` is never closed".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_quotes_and_braces_on_their_own_lines() {
        let t = "! comment\nglobal_defs {\n  router_id LVS_1 # trailing\n}\nvirtual_server 198.18.0.100 80\n{\n  real_server 198.18.0.11 80 { weight 2 }\n  MISC_CHECK {\n    misc_path \"/bin/check a b\"\n  }\n}\n";
        let s = parse(t).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].key(), s[0].children()[0].words.clone()),
            ("global_defs", vec!["router_id".into(), "LVS_1".into()])
        );
        let vs = &s[1];
        assert_eq!((vs.line, vs.arg(0), vs.arg(1)), (5, Some("198.18.0.100"), Some("80")));
        let rs = &vs.children()[0];
        assert_eq!((rs.line, rs.children()[0].words.join(" ")), (7, "weight 2".into()));
        assert_eq!(vs.children()[1].children()[0].arg(0), Some("/bin/check a b"));
    }

    #[test]
    fn unbalanced_braces_and_quotes_are_named_by_line() {
        assert_eq!(parse("a {\n b\n").unwrap_err().line, 1);
        assert_eq!(parse("a\n}\n").unwrap_err().line, 2);
        assert_eq!(parse("x \"open\n").unwrap_err().line, 1);
    }
}
