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
    modifiers(&BearerAuth),
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
