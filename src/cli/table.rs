//! Human tables: columns padded to their widest cell, numbers right-aligned.

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, one line per row, each ending in a newline. A column whose
    /// cells (headers aside) all look numeric (`12`, `4.5%`, `-`, `+1.2 sigma`,
    /// `31 ms`) is right-aligned; the first column never is.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let cell = |row: &Vec<String>, c: usize| row.get(c).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| cell(r, c).chars().count())
                    .chain(self.headers.get(c).map(|h| h.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let right: Vec<bool> = (0..columns)
            .map(|c| c > 0 && self.rows.iter().all(|r| numeric(&cell(r, c))))
            .collect();
        let line = |cells: &Vec<String>| {
            let padded: Vec<String> = (0..columns)
                .map(|c| {
                    let text = cell(cells, c);
                    let width = widths.get(c).copied().unwrap_or(0);
                    if right.get(c).copied().unwrap_or(false) {
                        format!("{text:>width$}")
                    } else {
                        format!("{text:<width$}")
                    }
                })
                .collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&self.headers);
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

fn numeric(text: &str) -> bool {
    let t = text.trim();
    t == "-"
        || t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || ((c == '+' || c == '-') && t.len() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut t = Table::new(&["NAME", "SHARE", "NOTE"]);
        t.row(vec!["fraud-v1".into(), "95.00%".into(), "primary".into()]);
        t.row(vec!["v2".into(), "5.00%".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "NAME       SHARE  NOTE\nfraud-v1  95.00%  primary\nv2         5.00%  x\n"
        );
    }
}
