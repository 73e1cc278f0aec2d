// Mounts GraphiQL on GET /graphql. A signed-in console session sends its CSRF token
// (from the page's <meta name="csrf-token">) with every request, as the console does;
// a personal token goes in the Headers tab as {"Authorization": "Bearer tsrp_…"}.
(function () {
  "use strict";
  // Full height, set here: the page's policy allows no inline style attribute.
  [document.documentElement, document.body, document.getElementById("graphiql")].forEach(
    function (element) {
      element.style.height = "100%";
      element.style.margin = "0";
    }
  );
  var meta = document.querySelector('meta[name="csrf-token"]');
  var headers = {};
  if (meta && meta.content) {
    headers["X-CSRF-Token"] = meta.content;
  }
  var fetcher = GraphiQL.createFetcher({ url: "/graphql", headers: headers });
  // Tabs and history (queries and their variables, which may hold a token given to
  // verifyToken) live only as long as the browser tab, never in localStorage.
  var storage = window.sessionStorage;
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      storage: storage,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultQuery:
        "# Tessera: the REST API's queries and mutations, over GraphQL.\n" +
        "# Signed in to the console? Run this. Otherwise, in Headers:\n" +
        "# {\"Authorization\": \"Bearer tsrp_…\"} (a personal token)\n\n" +
        "query {\n  me { email role }\n  tokens(limit: 10) {\n    total\n    items { name type status expiresAt lastUsedAt }\n  }\n}\n",
    })
  );
})();
