//! The OpenAPI 3 document, generated from the handlers' annotations and
//! served at `/api/openapi.json`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes::{annotations, files, reports, search, submit, tasks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MultiScanner REST API",
        description = "MultiScanner's /api/v2 routes, translated into calls to the mesh's gRPC services. \
            When API tokens are configured, send `Authorization: Bearer TOKEN`; reading needs a token, \
            changing data a `write` one.",
    ),
    paths(
        tasks::root, tasks::modules, tasks::list, submit::create, tasks::get, tasks::delete,
        tasks::by_sha256, search::analyses, search::history, reports::get, reports::several,
        files::of_task, files::of_tasks, files::by_sha256, annotations::list_tags,
        annotations::add_tag, annotations::remove_tag, annotations::list_notes,
        annotations::add_note, annotations::edit_note, annotations::delete_note,
    ),
    modifiers(&BearerAuth, &ResponseDescriptions),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Gives every response the description OpenAPI requires, from its status
/// where the handler did not write one (the error answers are the same on
/// every route).
struct ResponseDescriptions;

fn describe(status: &str) -> &'static str {
    match status {
        "200" => "Success",
        "201" => "Created",
        "202" => "Accepted, not finished yet",
        "400" => "Bad input; `field` names the parameter at fault",
        "401" => "No API token, or an unknown one",
        "403" => "The token may not do this (a read token changing data)",
        "404" => "No such task, sample or note",
        "413" => "The upload is larger than the configured limit",
        "503" => "The scheduler cannot be reached",
        _ => "See the status code",
    }
}

impl Modify for ResponseDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in &mut op.responses.responses {
                    if let utoipa::openapi::RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = describe(status).to_owned();
                    }
                }
            }
        }
    }
}
