//! `--llm-endpoint URL --llm-model NAME`: posts each class's prompt to an OpenAI-compatible chat
//! completions endpoint and stores the label and strategy it answers. Nothing leaves the machine
//! without these options. The key, when the endpoint needs one, comes from `$SEGMIX_LLM_API_KEY`
//! (or `$OPENAI_API_KEY`), never from the command line.

use std::time::Duration;

use super::Clusters;
use crate::foundation::error::{Error, Result};

/// Where to send the prompts.
#[derive(Debug, Clone)]
pub struct LlmEndpoint {
    /// The chat completions URL; a base URL ending in `/v1` gets `/chat/completions` appended.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl LlmEndpoint {
    pub fn new(url: &str, model: &str) -> Self {
        let url = url.trim_end_matches('/');
        let url = if url.ends_with("/chat/completions") { url.to_string() } else { format!("{url}/chat/completions") };
        let api_key = std::env::var("SEGMIX_LLM_API_KEY").or_else(|_| std::env::var("OPENAI_API_KEY")).ok();
        LlmEndpoint { url, model: model.to_string(), api_key, timeout: Duration::from_secs(120) }
    }
}

/// Splits an answer into (label, strategy): the JSON the prompt asks for, else the first line as
/// the label and the rest as the strategy.
pub fn parse_answer(answer: &str) -> (String, Option<String>) {
    let trimmed = answer.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```").trim();
    let json = trimmed.find('{').and_then(|a| trimmed.rfind('}').map(|b| &trimmed[a..=b]));
    if let Some(v) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        && let Some(label) = v["label"].as_str()
    {
        return (label.trim().to_string(), v["strategy"].as_str().map(|s| s.trim().to_string()));
    }
    let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
    let label = lines.next().unwrap_or_default().trim_matches(['"', '*', '#', ' ']).to_string();
    let rest: Vec<&str> = lines.collect();
    (label, (!rest.is_empty()).then(|| rest.join(" ")))
}

/// Asks for every class's label; fills `label` and `strategy` and records the model.
pub fn label_classes(clusters: &mut Clusters, ep: &LlmEndpoint) -> Result<()> {
    let agent = ureq::AgentBuilder::new().timeout(ep.timeout).build();
    for c in &mut clusters.classes {
        let body = serde_json::json!({
            "model": ep.model,
            "temperature": 0,
            "messages": [{"role": "user", "content": c.prompt}],
        });
        let mut req = agent.post(&ep.url).set("Content-Type", "application/json");
        if let Some(key) = &ep.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let resp = req
            .send_string(&body.to_string())
            .map_err(|e| Error::config(format!("--llm-endpoint {}: class {}: {e}", ep.url, c.class)))?;
        let v: serde_json::Value = resp
            .into_json()
            .map_err(|e| Error::config(format!("--llm-endpoint {}: the answer is not JSON: {e}", ep.url)))?;
        let content = v["choices"][0]["message"]["content"].as_str().ok_or_else(|| {
            Error::config(format!(
                "--llm-endpoint {}: no choices[0].message.content in the answer (is it an OpenAI-compatible \
                 chat completions endpoint?)",
                ep.url
            ))
        })?;
        let (label, strategy) = parse_answer(content);
        c.label = Some(label);
        c.strategy = strategy;
    }
    clusters.llm_model = Some(ep.model.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_as_json_or_lines() {
        let (l, s) = parse_answer("```json\n{\"label\": \"Reward hunters\", \"strategy\": \"Cap bonuses.\"}\n```");
        assert_eq!((l.as_str(), s.as_deref()), ("Reward hunters", Some("Cap bonuses.")));
        let (l, s) = parse_answer("**Guild veterans**\nLean on social features.");
        assert_eq!((l.as_str(), s.as_deref()), ("Guild veterans", Some("Lean on social features.")));
    }

    #[test]
    fn base_urls_get_the_completions_path() {
        assert_eq!(LlmEndpoint::new("http://localhost:8080/v1/", "m").url, "http://localhost:8080/v1/chat/completions");
        assert_eq!(LlmEndpoint::new("http://h/v1/chat/completions", "m").url, "http://h/v1/chat/completions");
    }
}
