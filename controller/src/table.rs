//! Human tables: columns as wide as their widest cell, whatever the names' lengths
//! (comfy-table), without borders, as `ps` and `ipvsadm` print. The ipvsadm views are not
//! made here: they must match ipvsadm byte for byte.
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

/// A table with `header`; the columns listed in `right` are right-aligned (numbers).
pub fn render(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r.clone());
    }
    for (i, c) in t.column_iter_mut().enumerate() {
        // One space between columns, none before the first.
        c.set_padding((0, 1));
        if right.contains(&i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_grow_with_long_names_and_numbers_align_right() {
        let rows = vec![
            vec!["rs1".to_string(), "7".to_string()],
            vec!["a-very-long-real-server-name".to_string(), "12".to_string()],
        ];
        let t = super::render(&["NODE", "GEN"], &rows, &[1]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NODE                         GEN");
        assert_eq!(lines[1], "rs1                            7");
        assert_eq!(lines[2], "a-very-long-real-server-name  12");
    }
}
