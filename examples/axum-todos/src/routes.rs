//! The handlers: plain axum extractors and responses.

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gateway::tower::Environ;
use serde::Deserialize;

use crate::store::{Store, StoreError, Todo};

/// Why a request failed, answered as `{"error": "..."}`.
pub enum ApiError {
    NotFound(i64),
    EmptyTitle,
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Store(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(id) => (StatusCode::NOT_FOUND, format!("no todo {id}")),
            ApiError::EmptyTitle => (StatusCode::BAD_REQUEST, "the title is empty".into()),
            ApiError::Store(error) => {
                // The details are for the log, not for the client.
                tracing::error!("{error}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the database failed".into(),
                )
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

pub async fn list(State(store): State<Store>) -> Result<Json<Vec<Todo>>, ApiError> {
    Ok(Json(store.list().await?))
}

#[derive(Deserialize)]
pub struct NewTodo {
    title: String,
}

pub async fn create(
    State(store): State<Store>,
    // Under nginx, the mount point to put before the Location; none under axum::serve.
    environ: Option<Extension<Environ>>,
    Json(new): Json<NewTodo>,
) -> Result<impl IntoResponse, ApiError> {
    let title = new.title.trim();
    if title.is_empty() {
        return Err(ApiError::EmptyTitle);
    }
    let todo = store.create(title).await?;
    let mount = environ
        .as_ref()
        .map_or("", |Extension(environ)| environ.script_name());
    let location = format!("{mount}/todos/{}", todo.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(todo)))
}

pub async fn show(State(store): State<Store>, Path(id): Path<i64>) -> Result<Json<Todo>, ApiError> {
    store.get(id).await?.map(Json).ok_or(ApiError::NotFound(id))
}

pub async fn toggle(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<Json<Todo>, ApiError> {
    store
        .toggle(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

pub async fn delete(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if store.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(id))
    }
}
