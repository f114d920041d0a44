//! Every bad input gets an error that names the file, the line and the column.

use segmix::Error;
use segmix::data::{Strictness, read_table};
use segmix::mixture::em::FitConfig;

use crate::util::{fit, roles, write};

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn ragged_row_names_the_line() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "a,b\n1,2\n3\n4,5\n");
    let e = message(read_table(&f, &roles(&[], &["a"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("t.csv") && e.contains("line 3") && e.contains("has 1 fields but the header has 2"), "{e}");
}

#[test]
fn unknown_column_lists_the_header() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "a,b\n1,2\n");
    let e = message(read_table(&f, &roles(&["zz"], &[], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("t.csv") && e.contains("no column \"zz\"") && e.contains("\"a\", \"b\""), "{e}");
}

#[test]
fn non_numeric_value_names_line_row_and_column() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "a,CTR\nx,1.5\ny,abc\n");
    let e = message(read_table(&f, &roles(&["a"], &["CTR"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("line 3") && e.contains("row 1") && e.contains("\"CTR\"") && e.contains("\"abc\""), "{e}");
}

#[test]
fn lines_are_counted_as_an_editor_counts_them_whatever_the_line_ends() {
    // LF, CRLF (Excel, Python's csv) and CR-only files: "oops" is on line 4 in each; a quoted
    // field running over two lines moves the next rows down one more.
    let d = tempfile::tempdir().unwrap();
    for (name, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
        let text = ["a,x", "u,1", "v,2", "w,oops", "z,4"].join(end) + end;
        let f = write(d.path(), &format!("{name}.csv"), &text);
        let e = message(read_table(&f, &roles(&["a"], &["x"], None), Strictness::Fit).unwrap_err());
        assert!(e.contains("line 4 (row 2)"), "{name}: {e}");
        let text = ["a,x", "\"u", "u\",1", "v,2", "w,oops"].join(end) + end;
        let f = write(d.path(), &format!("{name}-quoted.csv"), &text);
        let e = message(read_table(&f, &roles(&["a"], &["x"], None), Strictness::Fit).unwrap_err());
        assert!(e.contains("line 5 (row 2)"), "{name}, quoted: {e}");
    }
}

#[test]
fn a_quote_never_closed_is_an_error_not_one_giant_cell() {
    let d = tempfile::tempdir().unwrap();
    let mut text = String::from("a,note\n");
    for i in 0..10 {
        text.push_str(&format!("x,{}\n", if i == 3 { "\"open quote".to_string() } else { format!("n{i}") }));
    }
    let f = write(d.path(), "t.csv", &text);
    let e = message(read_table(&f, &roles(&["a", "note"], &[], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("line 5") && e.contains("never closed"), "{e}");
    // Closed quotes over several lines, and a stray quote inside an unquoted cell, are fine.
    let f = write(d.path(), "ok.csv", "a,note\nx,\"two\nlines\"\ny,5\" screen\nz,\"last\nrow\"\n");
    let t = read_table(&f, &roles(&["a", "note"], &[], None), Strictness::Fit).unwrap();
    assert_eq!(t.n_rows, 3);
    let f = write(d.path(), "stray.csv", "a,note\r\nx,\"two\r\nlines\"\r\ny,5\" screen\r\n");
    assert_eq!(read_table(&f, &roles(&["a", "note"], &[], None), Strictness::Fit).unwrap().n_rows, 2);
}

#[test]
fn infinite_value_is_not_a_number() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "CTR\n1\ninf\n");
    let e = message(read_table(&f, &roles(&[], &["CTR"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("line 3") && e.contains("not a number"), "{e}");
}

#[test]
fn all_missing_column_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "a,b\nx,NA\ny,\nz,null\n");
    let e = message(read_table(&f, &roles(&["a"], &["b"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("column \"b\" has no value in any row"), "{e}");
    // predict accepts it: new rows have no metrics yet.
    let t = read_table(&f, &roles(&["a"], &["b"], None), Strictness::Predict).unwrap();
    assert_eq!(t.n_rows, 3);
}

#[test]
fn empty_file_and_header_only() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "empty.csv", "");
    let e = message(read_table(&f, &roles(&["a"], &[], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("empty.csv") && e.contains("empty"), "{e}");
    let f = write(d.path(), "head.csv", "a,b\n");
    let e = message(read_table(&f, &roles(&["a"], &[], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("head.csv") && e.contains("no data rows"), "{e}");
}

#[test]
fn non_utf8_names_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.csv");
    std::fs::write(&p, b"a,b\nok,1\n\xff\xfe,2\n").unwrap();
    let e = message(read_table(&p, &roles(&["a"], &["b"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("line 3") && e.contains("column \"a\"") && e.contains("UTF-8"), "{e}");
}

#[test]
fn duplicate_roles_and_header_names() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "a,b\n1,2\n");
    let e = message(read_table(&f, &roles(&["a"], &["a"], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("named twice"), "{e}");
    let f = write(d.path(), "u.csv", "a,a\n1,2\n");
    let e = message(read_table(&f, &roles(&["a"], &[], None), Strictness::Fit).unwrap_err());
    assert!(e.contains("names column \"a\" 2 times"), "{e}");
}

#[test]
fn missing_tokens_are_missing_and_rows_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "c,x\nA,1\n,2\nNA,n/a\nnull,NaN\n B ,  3 \n");
    let t = read_table(&f, &roles(&["c"], &["x"], None), Strictness::Fit).unwrap();
    assert_eq!(t.n_rows, 5);
    let c: Vec<Option<&str>> = t.categorical[0].values.iter().map(|v| v.as_deref()).collect();
    assert_eq!(c, [Some("A"), None, None, None, Some("B")]);
    let x = &t.numeric[0].values;
    assert_eq!((x[0], x[1], x[4]), (1.0, 2.0, 3.0));
    assert!(x[2].is_nan() && x[3].is_nan());
}

#[test]
fn quoted_fields_and_bom_are_read() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "\u{feff}name,txt\nA,\"hello, world\"\nB,\"say \"\"hi\"\"\"\n");
    let t = read_table(&f, &roles(&["name"], &[], Some("txt")), Strictness::Fit).unwrap();
    let txt = t.text.unwrap().values;
    assert_eq!(txt[0].as_deref(), Some("hello, world"));
    assert_eq!(txt[1].as_deref(), Some("say \"hi\""));
}

#[test]
fn embeddings_row_count_must_match() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "c\nA\nB\nA\n");
    let e = write(d.path(), "e.csv", "0.1,0.2\n0.3,0.1\n");
    let err = message(
        fit(&f, roles(&["c"], &[], None), Some(&e), FitConfig { k_min: 2, k_max: 2, ..Default::default() })
            .unwrap_err(),
    );
    assert!(err.contains("e.csv") && err.contains("2 embedding rows but the table has 3 rows"), "{err}");
}

#[test]
fn partly_missing_embedding_row_is_malformed() {
    let d = tempfile::tempdir().unwrap();
    let e = write(d.path(), "e.csv", "0.1,0.2\n0.3,\n");
    let err = message(segmix::data::embeddings::read_matrix(&e).unwrap_err());
    assert!(err.contains("row 1, column 1") && err.contains("partly missing"), "{err}");
}

#[test]
fn k_larger_than_rows_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "x\n1\n2\n3\n");
    let err = message(
        fit(&f, roles(&[], &["x"], None), None, FitConfig { k_min: 2, k_max: 5, ..Default::default() }).unwrap_err(),
    );
    assert!(err.contains("K = 5 is larger than the number of rows (3)"), "{err}");
}

#[test]
fn npy_reader_handles_f32_f64_and_rejects_bad_files() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.npy");
    let mut buf = Vec::new();
    segmix::data::embeddings::write_npy_f32(&mut buf, 2, 3, &[1.0, 2.0, 3.0, f32::NAN, f32::NAN, f32::NAN]).unwrap();
    std::fs::write(&p, &buf).unwrap();
    let m = segmix::data::embeddings::read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.row(0), &[1.0, 2.0, 3.0]);
    assert!(m.row_missing(1));
    // float64 written by hand: header + 2 values.
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&0.5f64.to_le_bytes());
    b.extend_from_slice(&(-1.5f64).to_le_bytes());
    let q = d.path().join("b.npy");
    std::fs::write(&q, &b).unwrap();
    let m = segmix::data::embeddings::read_matrix(&q).unwrap();
    assert_eq!((m.rows, m.cols, m.values.clone()), (2, 1, vec![0.5, -1.5]));
    let r = write(d.path(), "c.npy", "not numpy");
    assert!(message(segmix::data::embeddings::read_matrix(&r).unwrap_err()).contains("not a .npy file"));
    // A shape whose element count wraps around usize is refused, not a panic.
    for shape in ["(4294967296, 4294967297)", "(18446744073709551615, 2)", "(2305843009213693952,)"] {
        let header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&0.5f64.to_le_bytes());
        std::fs::write(&q, &b).unwrap();
        let e = message(segmix::data::embeddings::read_matrix(&q).unwrap_err());
        assert!(e.contains("fewer values than its shape"), "{shape}: {e}");
    }
}

#[test]
fn text_without_vectors_and_empty_roles_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "c,txt\nA,hello\nB,world\n");
    let cfg = || FitConfig { k_min: 1, k_max: 1, ..Default::default() };
    let e = message(fit(&f, roles(&["c"], &[], Some("txt")), None, cfg()).unwrap_err());
    assert!(e.contains("--text needs vectors") && e.contains("--embeddings"), "{e}");
    let e = message(fit(&f, roles(&[], &[], None), None, cfg()).unwrap_err());
    assert!(e.contains("nothing to model"), "{e}");
}

#[test]
fn identifier_like_categorical_column_gets_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,x\n");
    for i in 0..100 {
        csv.push_str(&format!("ID{},{}\n", i % 60, (i % 7) as f64 * 0.5));
    }
    let f = write(d.path(), "t.csv", &csv);
    let out =
        fit(&f, roles(&["id"], &["x"], None), None, FitConfig { k_min: 2, k_max: 2, n_init: 1, ..Default::default() })
            .unwrap();
    assert!(out.warnings.iter().any(|w| w.contains("\"id\" has 60 levels for 100 values")), "{:?}", out.warnings);
}

#[test]
fn rows_with_missing_text_have_no_text_block_whatever_the_file_holds() {
    use segmix::data::embeddings::read_matrix;
    use segmix::featurize::TextVectors;
    use segmix::featurize::schema::Schema;
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "t.csv", "c,txt\nA,hello\nB,\nA,world\nB,more words\n");
    // Every row has a vector, including row 1 whose text is empty.
    let e = write(d.path(), "e.csv", "1,0,0\n0,1,0\n0,0,1\n1,1,0\n");
    let table = read_table(&f, &roles(&["c"], &[], Some("txt")), Strictness::Fit).unwrap();
    let v = TextVectors::from_file(e.clone(), read_matrix(&e).unwrap(), &table);
    assert_eq!(v.vectors.row_of(), [Some(0), None, Some(2), Some(3)]);
    assert_eq!(v.vectors.gram().unwrap().rows, 3, "the empty text's vector is not in the PCA");
    let (schema, _) = Schema::fit(&table, Some(&v), 2, &[]).unwrap();
    let (data, _) = schema.transform(&table, Some(&v)).unwrap();
    let observed: Vec<bool> = (0..4).map(|i| data.patterns[data.pattern[i] as usize][0]).collect();
    assert_eq!(observed, [true, false, true, true]);
}

#[test]
fn a_bad_table_fails_before_the_sentence_embedder_is_loaded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let d = tempfile::tempdir().unwrap();
    let calls = AtomicUsize::new(0);
    let load = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(Error::Embedder("no model in this test".into()))
    };
    let te = segmix::pipeline::TextEmbedder { load: &load, progress: &|_, _| {} };
    let job = |data: std::path::PathBuf| segmix::pipeline::FitJob {
        data,
        roles: roles(&["c"], &[], Some("txt")),
        embeddings: None,
        pca_dims: 4,
        transforms: Vec::new(),
        config: FitConfig { k_min: 1, k_max: 1, ..Default::default() },
    };
    let be = segmix::backend::CpuBackend::new();
    let no = segmix::mixture::em::NoProgress;
    let bad = write(d.path(), "bad.csv", "c,txt\nA,hello\nB\n");
    let e = message(segmix::pipeline::fit(&be, &job(bad), Some(&te), &no).unwrap_err());
    assert!(e.contains("bad.csv") && e.contains("line 3"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the model must not be loaded for a table that fails to read");
    let good = write(d.path(), "good.csv", "c,txt\nA,hello\nB,world\n");
    let e = message(segmix::pipeline::fit(&be, &job(good), Some(&te), &no).unwrap_err());
    assert!(e.contains("no model in this test"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A hand-edited or corrupt `model.json` is refused on load with a message naming what is wrong
/// and where; none of these panics (each one did, or scored garbage, before the loader checked
/// shapes, finiteness, probabilities and covariance structure).
#[test]
fn corrupt_model_files_are_refused_naming_the_field() {
    use segmix::model::ModelFile;
    use serde_json::{Value, json};
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = crate::util::text_table(d.path(), 60, |i| format!("copy {i}"));
    let config = FitConfig { k_min: 2, k_max: 2, n_init: 1, ..FitConfig::default() };
    let model = fit(&data, roles(&["channel"], &["ctr"], Some("copy")), Some(&emb), config).unwrap().model;
    let good: Value = serde_json::from_str(&model.to_json()).unwrap();
    let path = d.path().join("model.json");
    let load = |v: &Value| {
        std::fs::write(&path, serde_json::to_string(v).unwrap()).unwrap();
        ModelFile::load(&path)
    };
    load(&good).expect("the fitted model loads");
    let p = good["params"]["p"].as_u64().unwrap() as usize;
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a whole PCA component fewer",
            Box::new(|m| {
                for f in ["components", "explained_variance"] {
                    m["schema"]["text"]["pca"][f].as_array_mut().unwrap().truncate(1);
                }
                m["schema"]["text"]["scale"].as_array_mut().unwrap().truncate(1);
            }),
            "continuous coordinates",
        ),
        (
            "pca shorter than params",
            Box::new(|m| m["schema"]["text"]["pca"]["components"].as_array_mut().unwrap().truncate(1)),
            "1 PCA components but 6",
        ),
        ("one numeric column fewer", Box::new(|m| m["schema"]["numeric"].as_array_mut().unwrap().clear()), "params.p"),
        (
            "pca mean of the wrong width",
            Box::new(|m| m["schema"]["text"]["pca"]["mean"].as_array_mut().unwrap().pop().map(drop).unwrap()),
            "schema.text.pca.mean",
        ),
        ("sd zero", Box::new(|m| m["schema"]["numeric"][0]["sd"] = json!(0.0)), "sd is 0"),
        ("sd negative", Box::new(|m| m["schema"]["numeric"][0]["sd"] = json!(-1.0)), "sd is -1"),
        ("sd null", Box::new(|m| m["schema"]["numeric"][0]["sd"] = Value::Null), "malformed model"),
        ("pca scale zero", Box::new(|m| m["schema"]["text"]["scale"][0] = json!(0.0)), "scale"),
        ("weights sum to 1.5", Box::new(|m| m["params"]["weights"][0] = json!(1.0)), "params.weights sum to"),
        ("negative weight", Box::new(|m| m["params"]["weights"][0] = json!(-0.5)), "weight -0.5"),
        (
            "too few weights",
            Box::new(|m| m["params"]["weights"].as_array_mut().unwrap().truncate(1)),
            "params.weights has 1 values",
        ),
        ("asymmetric covariance", Box::new(move |m| m["params"]["covariances"][1] = json!(0.25)), "not symmetric"),
        ("covariance not PD", Box::new(move |m| m["params"]["covariances"][0] = json!(-1.0)), "not positive definite"),
        ("diag with full matrices", Box::new(|m| m["params"]["cov_type"] = json!("diag")), "off-diagonal"),
        ("NaN in a mean", Box::new(|m| m["params"]["means"][0] = json!("NaN")), "malformed model"),
        ("alpha above 1", Box::new(|m| m["params"]["alpha"][0] = json!(1.5)), "params.alpha"),
        ("alpha not summing to 1", Box::new(|m| m["params"]["alpha"][0] = json!(0.0)), "sum to"),
        (
            "levels disagree",
            Box::new(|m| m["schema"]["categorical"][0]["levels"].as_array_mut().unwrap().pop().map(drop).unwrap()),
            "n_levels",
        ),
        (
            "a level twice",
            Box::new(|m| {
                m["schema"]["categorical"][0]["levels"][1] = m["schema"]["categorical"][0]["levels"][0].clone()
            }),
            "twice",
        ),
        ("k zero", Box::new(|m| m["params"]["k"] = json!(0)), "params.k is 0"),
        ("fit.k disagrees", Box::new(|m| m["fit"]["k"] = json!(5)), "fit.k is 5"),
        ("negative ridge", Box::new(|m| m["params"]["reg"] = json!(-1e-6)), "params.reg"),
        ("continuous renamed", Box::new(|m| m["continuous"][0] = json!("x")), "continuous lists"),
        ("embedder width", Box::new(|m| m["schema"]["text"]["pca"]["dim"] = json!(7)), "schema.text.pca.mean"),
        ("newer version", Box::new(|m| m["version"] = json!(99)), "version 99"),
        ("not a model", Box::new(|m| m["format"] = json!("x")), "not a segmix model"),
    ];
    assert!(p >= 2, "the covariance edits need p ≥ 2 (p = {p})");
    for (what, edit, expect) in cases {
        let mut m = good.clone();
        edit(&mut m);
        let e = load(&m).expect_err(what).to_string();
        assert!(e.contains("model.json") && e.contains(expect), "{what}: {e}");
    }
}

/// A `;`-separated export of a European spreadsheet (decimal commas) and a tab-separated file
/// read as their header shows, with a note naming the separator; a comma file whose cells hold
/// semicolons stays a comma file.
#[test]
fn semicolon_and_tab_separated_tables_are_detected_and_named() {
    let d = tempfile::tempdir().unwrap();
    let r = roles(&["land"], &["ctr"], None);
    let f = write(d.path(), "eu.csv", "land;ctr\nDE;1,5\nFR;-0,25\nIT;2\n");
    let t = read_table(&f, &r, Strictness::Fit).unwrap();
    assert_eq!(t.numeric[0].values, [1.5, -0.25, 2.0]);
    assert_eq!(t.categorical[0].values[1].as_deref(), Some("FR"));
    let note = t.format_note().unwrap();
    assert!(note.contains("eu.csv") && note.contains("';'-separated") && note.contains("decimal comma"), "{note}");
    let f = write(d.path(), "t.tsv", "land\tctr\nDE\t1.5\nFR\t2\n");
    let t = read_table(&f, &r, Strictness::Fit).unwrap();
    assert_eq!(t.numeric[0].values, [1.5, 2.0]);
    assert!(t.format_note().unwrap().contains("tab-separated"));
    let f = write(d.path(), "c.csv", "land,ctr,note\nDE,1.5,a;b\nFR,2,c;d\n");
    let t = read_table(&f, &r, Strictness::Fit).unwrap();
    assert_eq!((t.delimiter, t.format_note()), (b',', None));
    // A decimal comma in a comma file is still an error naming the cell.
    let f = write(d.path(), "x.csv", "land,ctr\nDE,\"1,5\"\n");
    let e = message(read_table(&f, &r, Strictness::Fit).unwrap_err());
    assert!(e.contains("\"1,5\" is not a number"), "{e}");
}

/// A table that shares no column with the model is refused instead of giving every row the
/// class weights.
#[test]
fn a_prediction_table_without_any_model_column_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "new.csv", "x,y\n1,2\n");
    let e = message(read_table(&f, &roles(&["land"], &["ctr"], None), Strictness::Predict).unwrap_err());
    assert!(e.contains("new.csv") && e.contains("none of the model's columns") && e.contains("\"x\", \"y\""), "{e}");
    // One shared column is enough (the rest are treated as missing).
    let f = write(d.path(), "some.csv", "land,y\nDE,2\n");
    assert!(read_table(&f, &roles(&["land"], &["ctr"], None), Strictness::Predict).is_ok());
}

/// A stream without line breaks (`/dev/zero`, a binary file) is refused after 64 MiB instead of
/// being read whole into one record.
#[test]
fn a_file_without_line_breaks_is_refused_with_bounded_memory() {
    let e = segmix::data::read_table_from(
        std::path::Path::new("zero.csv"),
        std::io::repeat(b'0'),
        &roles(&["a"], &[], None),
        Strictness::Fit,
    )
    .unwrap_err();
    let e = message(e);
    assert!(e.contains("zero.csv") && e.contains("line 1") && e.contains("longer than 64 MiB"), "{e}");
}
