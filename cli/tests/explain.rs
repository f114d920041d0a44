//! The command end to end: explanations and `segmix report`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::util::{repo_file, segmix, text_table};

/// Keywords on the demo name the generator's segments: fitted with the real model at K = 4, each
/// class's majority segment has its own vocabulary in the top keywords.
#[test]
fn demo_keywords_recover_the_segment_vocabulary() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let data = repo_file("examples/game_ads.csv");
    let run = segmix(&[
        "fit",
        data.to_str().unwrap(),
        "--cat",
        "Country,Channel,Creative_Type",
        "--num",
        "CTR,CVR,ROAS",
        "--text",
        "Ad_Text",
        "--k",
        "4",
        "--n-init",
        "3",
        "--device",
        "cpu",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let clusters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    // The majority true segment of each class, from assignments.csv and the data.
    let truth: Vec<String> = {
        let mut rdr = csv_reader(&data);
        let headers = rdr.headers().unwrap().clone();
        let col = headers.iter().position(|h| h == "true_segment").unwrap();
        rdr.records().map(|r| r.unwrap()[col].to_string()).collect()
    };
    let assign = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let classes: Vec<usize> = assign.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    let vocab: [(&str, &[&str]); 4] = [
        ("reward_push", &["free", "claim", "reward", "rewards", "gems", "daily", "collect"]),
        ("nostalgia_social", &["guild", "friends", "classic", "reunite", "nostalgia", "old"]),
        ("high_spec_visual", &["stunning", "visual", "graphics", "cinematic", "quality", "masterpiece", "4k"]),
        ("competitive_pvp", &["ranked", "pvp", "arena", "leaderboard", "skill", "prove", "season"]),
    ];
    let mut seen = std::collections::HashSet::new();
    for class in clusters["classes"].as_array().unwrap() {
        let k = class["class"].as_u64().unwrap() as usize;
        let mut counts = std::collections::HashMap::new();
        for (i, &c) in classes.iter().enumerate() {
            if c == k {
                *counts.entry(truth[i].as_str()).or_insert(0) += 1;
            }
        }
        let segment = *counts.iter().max_by_key(|e| e.1).unwrap().0;
        seen.insert(segment);
        let words: Vec<&str> =
            class["keywords"].as_array().unwrap().iter().map(|w| w["word"].as_str().unwrap()).collect();
        let expected = vocab.iter().find(|v| v.0 == segment).unwrap().1;
        let hits = words.iter().take(5).filter(|w| expected.contains(w)).count();
        assert!(hits >= 2, "class {k} ({segment}): top keywords {words:?}");
        assert!(words.iter().all(|w| !w.contains("##")), "token pieces in {words:?}");
    }
    assert_eq!(seen.len(), 4, "each class is a different segment");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches(r#"<section class="card""#).count(), 4);
    assert_only_own_scripts(&html);
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

/// The page's scripts are its own three (the `js` class switch, the explorer's JSON data and the
/// explorer), and the data block holds no `<` that could close it.
fn assert_only_own_scripts(html: &str) {
    assert_eq!(html.matches("<script").count(), 3, "a script that is not the report's own");
    let data = html.split(r#"<script type="application/json" id="segmix-data">"#).nth(1).unwrap();
    let data = &data[..data.find("</script>").unwrap()];
    assert!(!data.contains('<') && !data.contains('>') && !data.contains('&'), "markup in the explorer's data");
    assert!(data.contains("\\u003c") || !data.contains("script"), "user markup not escaped in the data");
}

/// A cell holding `<script>alert(1)</script>` shows as text: in the report, the prompt and
/// the Markdown; and `segmix report DIR` rebuilds the same page from the files.
#[test]
fn user_text_is_escaped_and_report_rebuilds() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 90, |i| {
        if i % 3 == 0 {
            "<script>alert(1)</script> & \"quotes\" ![img](http://e.x/i.png) [click](http://e.x) **b**".to_string()
        } else {
            format!("plain copy {}", i % 3)
        }
    });
    let csv = std::fs::read_to_string(&data).unwrap().replace("tiktok", "<b>tik</b>");
    std::fs::write(&data, csv).unwrap();
    let out = d.path().join("fit");
    fit_text_table(&data, &emb, &out, &["--num", "ctr", "--min-df", "2"]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_only_own_scripts(&html);
    assert!(!html.contains("<script>alert"), "raw script tag in the report");
    assert!(!html.contains("<b>tik"), "raw markup from a category in the report");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(html.contains("&lt;b&gt;tik&lt;/b&gt;"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!md.contains("<script") && md.contains("&lt;script&gt;"));
    // Markdown in user text stays text: no live link, image or emphasis.
    assert!(!md.contains("](http") && !md.contains("**b**"), "live Markdown from user text");
    assert!(md.contains(r"\!\[img\]\(http://e.x/i.png\) \[click\]\(http://e.x\) \*\*b\*\*"), "{md}");
    // Rebuild from the files alone.
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("report.md")).unwrap();
    let rebuilt = segmix(&["report", out.to_str().unwrap(), "-q"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert_eq!(std::fs::read_to_string(out.join("report.html")).unwrap(), html);
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    // A folder without a fit is a clear error.
    let empty = segmix(&["report", d.path().to_str().unwrap()]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("model.json"));
}

/// `segmix fit` on a [`text_table`] (channel + copy with its given embeddings, K = 3, CPU, quiet)
/// into `out`, with `extra` options; panics with stderr unless it succeeded.
fn fit_text_table(data: &Path, emb: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["fit", data.to_str().unwrap(), "--cat", "channel", "--text", "copy"];
    args.extend(["--embeddings", emb.to_str().unwrap(), "--k", "3", "--device", "cpu", "-q"]);
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    let run = segmix(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

fn csv_reader(p: &Path) -> csv::Reader<std::fs::File> {
    csv::Reader::from_path(p).unwrap()
}
/// `--llm-endpoint` posts each class's prompt to an OpenAI-compatible endpoint (a local mock
/// here) and stores the answers; the report shows the labels.
#[test]
fn llm_labels_come_from_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut prompts = Vec::new();
        for n in 1..=3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(req["model"], "mock-model");
            prompts.push((first, req["messages"][0]["content"].as_str().unwrap().to_string()));
            let answer = format!("{{\"label\": \"Segment <{n}>\", \"strategy\": \"Do thing {n}.\"}}");
            let reply =
                serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}}]}).to_string();
            write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len())
                .unwrap();
        }
        prompts
    });
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 60, |i| format!("copy {}", i % 3));
    let out = d.path().join("fit");
    let url = format!("http://127.0.0.1:{port}/v1");
    fit_text_table(&data, &emb, &out, &["--llm-endpoint", &url, "--llm-model", "mock-model"]);
    let prompts = server.join().unwrap();
    assert!(prompts.iter().all(|(line, _)| line.starts_with("POST /v1/chat/completions")));
    assert!(prompts.iter().all(|(_, p)| p.contains("\"label\"") && p.contains("Segment ")));
    let clusters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    assert_eq!(clusters["llm_model"], "mock-model");
    for (i, c) in clusters["classes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(c["label"], format!("Segment <{}>", i + 1));
        assert_eq!(c["strategy"], format!("Do thing {}.", i + 1));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Class 1 — Segment &lt;1&gt;"));
}

#[test]
fn tsne_map_is_in_clusters_json_and_the_report() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) = text_table(d.path(), 90, |i| format!("copy {}", i % 9));
    let out = d.path().join("fit");
    fit_text_table(&data, &emb, &out, &["--tsne"]);
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    assert_eq!(c["tsne"].as_array().unwrap().len(), 90);
    assert!(c["tsne_of"].as_str().unwrap().contains("reduced text embedding"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(r#"aria-label="t-SNE map of the rows""#));
}

/// `segmix report DIR --merge-to G` cuts the class hierarchy: every row's group posteriors sum
/// to one, the groups partition the classes, the files join the folder's manifest.
#[test]
fn report_merge_to_writes_the_groups() {
    let d = tempfile::tempdir().unwrap();
    let (data, emb) =
        text_table(d.path(), 90, |i| ["free gems now", "join the guild", "ranked arena"][i % 3].to_string());
    let out = d.path().join("fit");
    fit_text_table(&data, &emb, &out, &["--num", "ctr"]);
    let run = segmix(&["report", out.to_str().unwrap(), "--merge-to", "2"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("group 2: classes "));
    let mut rows = 0;
    for rec in csv_reader(&out.join("merge-2.csv")).records() {
        let rec = rec.unwrap();
        let post: Vec<f64> = (3..5).map(|i| rec[i].parse().unwrap()).collect();
        assert!((post.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let group: usize = rec[1].parse().unwrap();
        assert!(post[group - 1] >= post[2 - group]);
        rows += 1;
    }
    assert_eq!(rows, 90);
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("merge-2.json")).unwrap()).unwrap();
    let groups = merged["groups"].as_array().unwrap();
    let mut classes: Vec<u64> =
        groups.iter().flat_map(|g| g["classes"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap())).collect();
    classes.sort_unstable();
    assert_eq!(classes, [1, 2, 3]);
    let weight: f64 = groups.iter().map(|g| g["weight"].as_f64().unwrap()).sum();
    assert!((weight - 1.0).abs() < 1e-9);
    assert!(groups.iter().all(|g| g["categorical"]["channel"]["levels"].as_array().unwrap().len() == 3));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("merge-2.csv") && manifest.contains("merge-2.json"));
    // A damaged assignments.csv (no manifest, so it is read) is an error naming file, line and column.
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let mut lines: Vec<String> = assignments.lines().map(str::to_string).collect();
    let mut cells: Vec<&str> = lines[3].split(',').collect();
    cells[5] = "x"; // row,class,max_posterior,loglik,post_1,post_2,post_3
    lines[3] = cells.join(",");
    std::fs::write(out.join("assignments.csv"), lines.join("\n") + "\n").unwrap();
    let run = segmix(&["report", out.to_str().unwrap(), "--merge-to", "2"]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("assignments.csv") && err.contains("line 4: post_2 is not a number"), "{err}");
    for bad in ["0", "4"] {
        let run = segmix(&["report", out.to_str().unwrap(), "--merge-to", bad]);
        assert_eq!(run.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&run.stderr).contains("--merge-to must be between 1 and"));
    }
}
