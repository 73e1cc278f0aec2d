//! The API reference for people: the OpenAPI document (`openapi.rs`) read into sections
//! of operations and a list of schemas, rendered as Markdown (the committed
//! `docs/api.md`) and as an HTML page at `/docs`. Both come from the same document, so
//! neither can say something the API does not do.

use askama::Template;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use utoipa::OpenApi;

use crate::AppState;
use crate::openapi::ApiDoc;
use crate::ui::assets;
use crate::ui::page::render;

/// The whole reference.
#[derive(Debug)]
pub struct Reference {
    pub title: String,
    pub description: String,
    pub sections: Vec<Section>,
    pub schemas: Vec<Schema>,
}

/// The operations of one tag, in the document's order.
#[derive(Debug)]
pub struct Section {
    pub name: String,
    pub anchor: String,
    pub description: String,
    pub operations: Vec<Operation>,
}

#[derive(Debug)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub anchor: String,
    pub summary: String,
    pub description: String,
    /// `session or personal token`, `session`, or `none`.
    pub credentials: String,
    pub parameters: Vec<Parameter>,
    /// The request body's schema, when there is one.
    pub body: Option<String>,
    pub responses: Vec<Reply>,
}

#[derive(Debug)]
pub struct Parameter {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub description: String,
}

#[derive(Debug)]
pub struct Reply {
    pub status: String,
    pub description: String,
    pub body: Option<String>,
}

#[derive(Debug)]
pub struct Schema {
    pub name: String,
    pub anchor: String,
    pub description: String,
    /// For an enumeration: its values.
    pub values: Vec<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug)]
pub struct Field {
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub description: String,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A heading's anchor as GitHub and the page write it: lower case, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A schema's type in a few words: `string`, `TokenType or null`, `array of ActionView`.
fn kind_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let names: Vec<String> = choices.iter().map(kind_of).collect();
        return names.join(" or ");
    }
    let base = match &schema["type"] {
        Value::String(kind) => vec![kind.clone()],
        Value::Array(kinds) => kinds.iter().map(text).collect(),
        _ => vec!["any".to_owned()],
    };
    base.into_iter()
        .map(|kind| match kind.as_str() {
            "array" => format!("array of {}", kind_of(&schema["items"])),
            "string" if schema["format"].is_string() => {
                format!("string ({})", text(&schema["format"]))
            }
            _ => kind,
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The schema a request or response carries as JSON (or text), named.
fn body_of(content: &Value) -> Option<String> {
    let (_, media) = content.as_object()?.iter().next()?;
    Some(kind_of(&media["schema"]))
}

fn credentials(security: &Value) -> String {
    let names: Vec<String> = security
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|requirement| requirement.as_object()?.keys().next().cloned())
                .map(|name| name.replace('_', " "))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(" or ")
    }
}

impl Reference {
    /// The reference of Tessera's API.
    pub fn of_api() -> Result<Self, serde_json::Error> {
        Ok(Self::from_document(&serde_json::to_value(
            ApiDoc::openapi(),
        )?))
    }

    /// Reads an OpenAPI 3.1 document (as utoipa writes it).
    pub fn from_document(document: &Value) -> Self {
        let mut sections: Vec<Section> = document["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|tag| Section {
                        name: text(&tag["name"]),
                        anchor: anchor(&text(&tag["name"])),
                        description: text(&tag["description"]),
                        operations: Vec::new(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let paths = document["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in &paths {
            let Some(methods) = item.as_object() else {
                continue;
            };
            for (method, operation) in methods {
                let tag = operation["tags"][0].as_str().unwrap_or("other");
                let method = method.to_uppercase();
                let operation = Operation {
                    anchor: anchor(&format!("{method} {path}")),
                    method,
                    path: path.clone(),
                    summary: text(&operation["summary"]),
                    description: text(&operation["description"]),
                    credentials: credentials(&operation["security"]),
                    parameters: operation["parameters"]
                        .as_array()
                        .map(|list| {
                            list.iter()
                                .map(|parameter| Parameter {
                                    name: text(&parameter["name"]),
                                    location: text(&parameter["in"]),
                                    required: parameter["required"].as_bool().unwrap_or(false),
                                    description: text(&parameter["description"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    body: body_of(&operation["requestBody"]["content"]),
                    responses: operation["responses"]
                        .as_object()
                        .map(|responses| {
                            responses
                                .iter()
                                .map(|(status, reply)| Reply {
                                    status: status.clone(),
                                    description: text(&reply["description"]),
                                    body: body_of(&reply["content"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                match sections.iter_mut().find(|section| section.name == tag) {
                    Some(section) => section.operations.push(operation),
                    None => sections.push(Section {
                        name: tag.to_owned(),
                        anchor: anchor(tag),
                        description: String::new(),
                        operations: vec![operation],
                    }),
                }
            }
        }
        sections.retain(|section| !section.operations.is_empty());
        let schemas = document["components"]["schemas"]
            .as_object()
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(name, schema)| {
                        let required: Vec<&str> = schema["required"]
                            .as_array()
                            .map(|list| list.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        Schema {
                            name: name.clone(),
                            anchor: anchor(name),
                            description: text(&schema["description"]),
                            values: schema["enum"]
                                .as_array()
                                .map(|values| values.iter().map(text).collect())
                                .unwrap_or_default(),
                            fields: schema["properties"]
                                .as_object()
                                .map(|properties| {
                                    properties
                                        .iter()
                                        .map(|(field, property)| Field {
                                            name: field.clone(),
                                            kind: kind_of(property),
                                            required: required.contains(&field.as_str()),
                                            description: text(&property["description"]),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            title: text(&document["info"]["title"]),
            description: text(&document["info"]["description"]),
            sections,
            schemas,
        }
    }

    /// The reference as Markdown (`docs/api.md`).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!("# {} API reference\n\n", self.title));
        out.push_str(&format!("{}\n\n", self.description));
        out.push_str(
            "Generated from the OpenAPI document the server serves at `GET /openapi.json` \
             (committed as [`openapi.json`](openapi.json)); a test keeps this file equal to \
             it, so do not edit it by hand. Every error has the body \
             `{\"error\": {\"code\", \"message\", \"details\"}}`.\n\n",
        );
        for section in &self.sections {
            out.push_str(&format!("- [{}](#{})\n", section.name, section.anchor));
        }
        out.push_str("- [Schemas](#schemas)\n");
        for section in &self.sections {
            out.push_str(&format!("\n## {}\n\n", section.name));
            if !section.description.is_empty() {
                out.push_str(&format!("{}\n", section.description));
            }
            for operation in &section.operations {
                out.push_str(&format!(
                    "\n### `{} {}`\n\n**{}.**",
                    operation.method, operation.path, operation.summary
                ));
                if !operation.description.is_empty() {
                    out.push_str(&format!(" {}", operation.description));
                }
                out.push_str(&format!("\n\nCredentials: {}.\n", operation.credentials));
                if !operation.parameters.is_empty() {
                    out.push_str(
                        "\n| Parameter | In | Required | Description |\n|---|---|---|---|\n",
                    );
                    for parameter in &operation.parameters {
                        out.push_str(&format!(
                            "| `{}` | {} | {} | {} |\n",
                            parameter.name,
                            parameter.location,
                            if parameter.required { "yes" } else { "no" },
                            cell(&parameter.description)
                        ));
                    }
                }
                if let Some(body) = &operation.body {
                    out.push_str(&format!("\nRequest body: {}.\n", linked(body)));
                }
                out.push_str("\n| Status | Meaning | Body |\n|---|---|---|\n");
                for reply in &operation.responses {
                    out.push_str(&format!(
                        "| {} | {} | {} |\n",
                        reply.status,
                        cell(&reply.description),
                        reply.body.as_deref().map(linked).unwrap_or_default()
                    ));
                }
            }
        }
        out.push_str("\n## Schemas\n");
        for schema in &self.schemas {
            out.push_str(&format!("\n### {}\n\n", schema.name));
            if !schema.description.is_empty() {
                out.push_str(&format!("{}\n\n", cell(&schema.description)));
            }
            if !schema.values.is_empty() {
                let values: Vec<String> = schema.values.iter().map(|v| format!("`{v}`")).collect();
                out.push_str(&format!("One of {}.\n", values.join(", ")));
            }
            if !schema.fields.is_empty() {
                out.push_str("| Field | Type | Required | Description |\n|---|---|---|---|\n");
                for field in &schema.fields {
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} |\n",
                        field.name,
                        linked(&field.kind),
                        if field.required { "yes" } else { "no" },
                        cell(&field.description)
                    ));
                }
            }
        }
        out
    }
}

/// Whether a word of a type names a schema (schemas start with a capital; `array`,
/// `of`, `string`… do not). The Markdown and the page link the same words.
fn names_schema(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// A type as Markdown, each schema name linked to its entry.
fn linked(kind: &str) -> String {
    kind.split(' ')
        .map(|word| {
            if names_schema(word) {
                format!("[`{word}`](#{})", anchor(word))
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /docs`: the reference as a page, styled like the console and as strict about
/// scripts (none).
#[derive(Debug, Template)]
#[template(path = "api_docs.html")]
struct DocsPage {
    reference: Reference,
    css: String,
    icon: String,
}

impl DocsPage {
    /// Whether `kind` names a schema (starts with a capital).
    fn is_schema(word: &str) -> bool {
        names_schema(word)
    }

    fn words(kind: &str) -> Vec<String> {
        kind.split(' ').map(str::to_owned).collect()
    }

    fn anchor_of(word: &str) -> String {
        anchor(word)
    }

    /// `text` cut at its backticks: `(true, …)` for the parts written as code.
    fn segments(text: &str) -> Vec<(bool, String)> {
        text.split('`')
            .enumerate()
            .filter(|(_, part)| !part.is_empty())
            .map(|(index, part)| (index % 2 == 1, part.to_owned()))
            .collect()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/docs", get(docs))
}

async fn docs() -> Response {
    match Reference::of_api() {
        Ok(reference) => render(&DocsPage {
            reference,
            css: assets::url("app.css"),
            icon: assets::url("icon.svg"),
        }),
        Err(error) => crate::error::ApiError::from(tessera_app::AppError::Internal(format!(
            "cannot read the OpenAPI document: {error}"
        )))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");

    /// `docs/api.md` is the reference of the API the server serves. After an intended
    /// change: `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib openapi`.
    #[test]
    fn the_committed_markdown_reference_follows_the_openapi_document() {
        let generated = Reference::of_api().unwrap().markdown();
        if std::env::var_os("TESSERA_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/api.md differs from the API: regenerate it with \
             `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib openapi` and commit it"
        );
    }

    #[test]
    fn the_reference_holds_every_operation_with_its_parameters_and_replies() {
        let reference = Reference::of_api().unwrap();
        let operations: Vec<&Operation> = reference
            .sections
            .iter()
            .flat_map(|section| &section.operations)
            .collect();
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let documented: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations.len(), documented);
        let create = operations
            .iter()
            .find(|op| op.method == "POST" && op.path == "/v1/tokens")
            .unwrap();
        assert_eq!(create.body.as_deref(), Some("CreateTokenRequest"));
        assert_eq!(create.credentials, "session or personal token");
        assert!(
            create
                .responses
                .iter()
                .any(|r| r.status == "201" && r.body.as_deref() == Some("CreatedToken"))
        );
        let list = operations
            .iter()
            .find(|op| op.method == "GET" && op.path == "/v1/tokens")
            .unwrap();
        assert!(list.parameters.iter().any(|p| p.name == "status"
            && p.location == "query"
            && p.description.contains("expired")));
        let verify = operations
            .iter()
            .find(|op| op.path == "/v1/verify")
            .unwrap();
        assert_eq!(verify.credentials, "none");
        let lifespan = reference
            .schemas
            .iter()
            .find(|schema| schema.name == "Lifespan")
            .unwrap();
        assert_eq!(lifespan.values, ["7d", "30d", "90d", "unlimited", "custom"]);
        let markdown = reference.markdown();
        assert!(markdown.contains("### `POST /v1/tokens`"));
        assert!(markdown.contains("[`CreateTokenRequest`](#createtokenrequest)"));
    }

    #[test]
    fn types_read_as_words() {
        let schema = serde_json::json!({"type": ["array", "null"], "items": {"$ref": "#/components/schemas/ActionView"}});
        assert_eq!(kind_of(&schema), "array of ActionView or null");
        let choice = serde_json::json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/RateLimit"}]});
        assert_eq!(kind_of(&choice), "null or RateLimit");
        let time = serde_json::json!({"type": "string", "format": "date-time"});
        assert_eq!(kind_of(&time), "string (date-time)");
    }
}
