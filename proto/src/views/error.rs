//! The error document of the admin API: `{"error": {"code": "...", "message": "..."}}`,
//! with the wire error codes' names (`UNKNOWN_TOPIC_OR_PARTITION`, `GROUP_ID_NOT_FOUND`)
//! where one applies, so scripts match the same codes the CLI prints.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            error: ApiErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
