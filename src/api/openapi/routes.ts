import path from 'node:path';
import express, { Router } from 'express';
import { OPENAPI_PATH, openApiDocument, REFERENCE_PATH } from './document';

/** swagger-ui-dist's own directory: its assets are served from the installed package, never from a CDN. */
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

// The package's own index.html and swagger-initializer.js point at the Petstore: both are replaced below.
const REFERENCE_PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>node-lifecycle API reference</title>
    <link rel="stylesheet" href="./swagger-ui.css">
    <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui" data-openapi-url="${OPENAPI_PATH}">
      <noscript>The reference needs JavaScript; the document itself is <a href="${OPENAPI_PATH}">${OPENAPI_PATH}</a>.</noscript>
    </div>
    <script src="./swagger-ui-bundle.js"></script>
    <script src="./swagger-initializer.js"></script>
  </body>
</html>
`;

// The token given to "Authorize" stays in the page's memory (persistAuthorization is off): never in storage.
const INITIALIZER = `window.addEventListener('load', function () {
  var root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
`;

/**
 * GET /api/v1/openapi.json and the rendered reference at /api/docs/. Neither needs the token: they
 * describe the API and hold no data. Mounted before the operator check (src/api/app.ts).
 */
export function openApiRoutes(): Router {
  // Strict: /api/docs and /api/docs/ differ, so that the page's relative asset URLs resolve under /api/docs/.
  const router = Router({ strict: true });

  router.get(OPENAPI_PATH, (_req, res) => {
    res.json(openApiDocument());
  });

  const reference = REFERENCE_PATH.replace(/\/$/, '');
  router.get(reference, (_req, res) => res.redirect(301, REFERENCE_PATH));
  router.get([REFERENCE_PATH, `${REFERENCE_PATH}index.html`], (_req, res) => {
    res.type('html').set('cache-control', 'no-cache').send(REFERENCE_PAGE);
  });
  router.get(`${REFERENCE_PATH}swagger-initializer.js`, (_req, res) => {
    res.type('js').set('cache-control', 'no-cache').send(INITIALIZER);
  });
  router.use(reference, express.static(SWAGGER_UI_DIR, { index: false, redirect: false }));

  return router;
}
