//! Parquet and Arrow IPC tables read as the same CSV table would be, with errors that name the
//! row group, row and column; predictions written as Parquet.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use segmix::data::{Strictness, Table, read_table};

use crate::util::{roles, write};

const CSV: &str = "seg,code,flag,ctr,note\n\
                   a,1,true,0.5,hello there\n\
                   b,2,false,NA,\n\
                   NA,3,true,1.25,good value\n\
                   b,,false,2,  spaced  \n";

/// The CSV table above as one record batch: `seg` a dictionary, `code` nullable integers (a
/// categorical), `flag` booleans, `ctr` floats with a null, `note` strings with a null.
fn batch() -> RecordBatch {
    let mut seg = StringDictionaryBuilder::<Int32Type>::new();
    for v in [Some("a"), Some("b"), Some("NA"), Some("b")] {
        seg.append_option(v);
    }
    let mut ctr = Float64Builder::new();
    for v in [Some(0.5), None, Some(1.25), Some(2.0)] {
        ctr.append_option(v);
    }
    let mut note = StringBuilder::new();
    for v in [Some("hello there"), None, Some("good value"), Some("  spaced  ")] {
        note.append_option(v);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(seg.finish()),
        Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), None])),
        Arc::new(BooleanArray::from(vec![true, false, true, false])),
        Arc::new(ctr.finish()),
        Arc::new(note.finish()),
    ];
    let schema = Schema::new(vec![
        Field::new("seg", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
        Field::new("code", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, false),
        Field::new("ctr", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// Writes `batch` as Parquet with row groups of `group_rows` rows.
fn write_parquet(path: &Path, batch: &RecordBatch, group_rows: usize) -> PathBuf {
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    path.to_path_buf()
}

fn write_ipc_file(path: &Path, batch: &RecordBatch) -> PathBuf {
    let mut w = arrow_ipc::writer::FileWriter::try_new(File::create(path).unwrap(), &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    path.to_path_buf()
}

fn write_ipc_stream(path: &Path, batch: &RecordBatch) -> PathBuf {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(File::create(path).unwrap(), &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    path.to_path_buf()
}

fn same_cells(a: &Table, b: &Table) {
    assert_eq!(a.n_rows, b.n_rows);
    for (x, y) in a.categorical.iter().zip(&b.categorical) {
        assert_eq!(x.values, y.values, "column {}", x.name);
    }
    for (x, y) in a.numeric.iter().zip(&b.numeric) {
        let bits = |v: &[f64]| v.iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect::<Vec<_>>();
        assert_eq!(bits(&x.values), bits(&y.values), "column {}", x.name);
    }
    assert_eq!(a.text.as_ref().map(|t| &t.values), b.text.as_ref().map(|t| &t.values));
}

#[test]
fn parquet_and_arrow_ipc_read_as_the_same_csv_table() {
    let d = tempfile::tempdir().unwrap();
    let csv = write(d.path(), "t.csv", CSV);
    let r = roles(&["seg", "code", "flag"], &["ctr"], Some("note"));
    let expected = read_table(&csv, &r, Strictness::Fit).unwrap();
    assert_eq!(expected.categorical[0].values[2], None, "NA is missing in CSV");
    let b = batch();
    for path in [
        write_parquet(&d.path().join("t.parquet"), &b, 3),
        write_parquet(&d.path().join("one.PQ"), &b, 100),
        write_ipc_file(&d.path().join("t.feather"), &b),
        write_ipc_file(&d.path().join("t.arrow"), &b),
        write_ipc_stream(&d.path().join("t.arrows"), &b),
    ] {
        let t = read_table(&path, &r, Strictness::Fit).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        same_cells(&expected, &t);
    }
    // Only the role columns are read: a Parquet file whose other columns are of any type.
    let r2 = roles(&["seg"], &[], None);
    let t = read_table(&d.path().join("t.parquet"), &r2, Strictness::Fit).unwrap();
    assert_eq!(t.categorical.len(), 1);
    assert!(t.numeric.is_empty() && t.text.is_none());
}

#[test]
fn columnar_errors_name_the_row_group_row_and_column() {
    let d = tempfile::tempdir().unwrap();
    // A numeric column stored as strings is parsed like CSV cells; a bad one is named.
    let values: Vec<Option<String>> =
        (0..10).map(|i| if i == 7 { Some("12,5%".into()) } else { Some(format!("{i}.5")) }).collect();
    let schema = Schema::new(vec![Field::new("ctr", DataType::Utf8, true)]);
    let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(values)) as ArrayRef]).unwrap();
    let f = write_parquet(&d.path().join("s.parquet"), &b, 4);
    let e = read_table(&f, &roles(&[], &["ctr"], None), Strictness::Fit).unwrap_err().to_string();
    assert!(
        e.contains("s.parquet") && e.contains("row group 1, row 7") && e.contains("\"ctr\"") && e.contains("12,5%"),
        "{e}"
    );

    // A type the role cannot read is refused by name, with what to do.
    let f = write_parquet(&d.path().join("t.parquet"), &batch(), 2);
    let e = read_table(&f, &roles(&[], &["flag"], None), Strictness::Fit).unwrap_err().to_string();
    assert!(e.contains("column \"flag\" holds Boolean") && e.contains("categorical"), "{e}");
    let e = read_table(&f, &roles(&[], &[], Some("ctr")), Strictness::Fit).unwrap_err().to_string();
    assert!(e.contains("column \"ctr\" holds Float64") && e.contains("text column"), "{e}");

    // A missing column lists the schema; a log transform's bad value names its row group.
    let e = read_table(&f, &roles(&["zz"], &[], None), Strictness::Fit).unwrap_err().to_string();
    assert!(e.contains("no column \"zz\"") && e.contains("\"seg\", \"code\""), "{e}");
    let job = segmix::pipeline::FitJob {
        data: f.clone(),
        roles: roles(&["seg"], &["ctr"], None),
        embeddings: None,
        pca_dims: 2,
        transforms: vec![("ctr".into(), segmix::featurize::schema::Transform::Log)],
        config: segmix::mixture::em::FitConfig { k_min: 1, k_max: 1, ..Default::default() },
    };
    // Row 3 holds ctr = 2.0 and row 0 0.5: every value is positive, so this fit runs; a zero fails.
    let mut zero = Float64Builder::new();
    for v in [Some(0.5), Some(1.0), Some(2.0), Some(0.0), Some(3.0)] {
        zero.append_option(v);
    }
    let schema = Schema::new(vec![Field::new("ctr", DataType::Float64, true)]);
    let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(zero.finish()) as ArrayRef]).unwrap();
    let z = write_parquet(&d.path().join("z.parquet"), &b, 2);
    let job = segmix::pipeline::FitJob { data: z, roles: roles(&[], &["ctr"], None), ..job };
    let e =
        segmix::pipeline::fit(&segmix::backend::cpu::CpuBackend::new(), &job, None, &segmix::mixture::em::NoProgress)
            .unwrap_err()
            .to_string();
    assert!(e.contains("z.parquet") && e.contains("row group 1, row 3") && e.contains("--log"), "{e}");

    // Not a Parquet file at all.
    let bad = write(d.path(), "bad.parquet", "a,b\n1,2\n");
    let e = read_table(&bad, &roles(&["a"], &[], None), Strictness::Fit).unwrap_err().to_string();
    assert!(e.contains("bad.parquet") && e.contains("not a readable Parquet file"), "{e}");
}

#[test]
fn predictions_are_written_as_parquet() {
    let d = tempfile::tempdir().unwrap();
    let rows: String = (0..60)
        .map(|i| format!("{},{}\n", ["x", "y"][i % 2], (i % 2) as f64 * 5.0 + (i as f64 * 0.37).sin()))
        .collect();
    let csv = write(d.path(), "t.csv", &format!("g,v\n{rows}"));
    let job = segmix::pipeline::FitJob {
        data: csv.clone(),
        roles: roles(&["g"], &["v"], None),
        embeddings: None,
        pca_dims: 2,
        transforms: vec![],
        config: segmix::mixture::em::FitConfig { k_min: 2, k_max: 2, ..Default::default() },
    };
    let cpu = segmix::backend::cpu::CpuBackend::new();
    let fit = segmix::pipeline::fit(&cpu, &job, None, &segmix::mixture::em::NoProgress).unwrap();
    let pred = segmix::pipeline::predict(&cpu, &fit.model, &csv, None, None).unwrap();
    let out = d.path().join("p.parquet");
    segmix::pipeline::write_prediction(&out, &pred).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let b = &batches[0];
    let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["row", "class", "max_posterior", "loglik", "post_1", "post_2", "expected_v"]);
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 60);
    let post1 = b.column(4).as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
    assert_eq!(post1.value(5), pred.posteriors.resp[5 * 2]);
}

#[test]
fn damaged_parquet_and_arrow_files_are_errors_never_panics() {
    // Every truncation and a byte flipped at every position of small files: each read is a
    // table or an error that names the file; none panics.
    let d = tempfile::tempdir().unwrap();
    let b = batch();
    let r = roles(&["seg", "code", "flag"], &["ctr"], Some("note"));
    for (name, path) in [
        ("t.parquet", write_parquet(&d.path().join("t.parquet"), &b, 2)),
        ("t.arrow", write_ipc_file(&d.path().join("t.arrow"), &b)),
        ("t.arrows", write_ipc_stream(&d.path().join("t.arrows"), &b)),
    ] {
        let good = std::fs::read(&path).unwrap();
        let bad = d.path().join(format!("bad-{name}"));
        let mut damaged = Vec::new();
        for cut in (0..good.len()).step_by(7) {
            damaged.push(good[..cut].to_vec());
        }
        for at in 0..good.len() {
            let mut v = good.clone();
            v[at] ^= 0x5a;
            damaged.push(v);
        }
        for bytes in damaged {
            std::fs::write(&bad, &bytes).unwrap();
            let result = std::panic::catch_unwind(|| read_table(&bad, &r, Strictness::Fit));
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert!(e.to_string().contains("bad-"), "{e}"),
                Err(_) => panic!("{name}: reading a damaged file panicked"),
            }
        }
    }
}
