// The shop's staff console. It talks only to the public API (/api/...) with the signed-in staff
// member's own tokens, which live in this script's memory alone: never in a cookie, never in
// storage, so a reload or a closed tab signs the member out and no other site can send them.
// Every piece of data is put on the page as text (textContent), never as HTML.
"use strict";

(function () {
  // -------------------------------------------------------------------------------------------
  // The session: tokens in memory, refreshed before they expire and after a 401
  // -------------------------------------------------------------------------------------------

  const session = {
    access: null,
    refresh: null,
    user: null,
    // The refresh under way, shared by every request that needs it: a refresh token is spent
    // by its first use (the API rotates it), so two refreshes at once would end the session.
    refreshing: null,
    timer: null,
  };

  /** The claims of a JWT, or {} when it cannot be read. */
  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    } catch (_) {
      return {};
    }
  }

  /** Refreshes a minute before the access token expires (at once if that is already past). */
  function scheduleRefresh() {
    clearTimeout(session.timer);
    const exp = claimsOf(session.access).exp;
    if (!exp) return;
    const wait = Math.max(5000, exp * 1000 - Date.now() - 60000);
    session.timer = setTimeout(() => {
      refreshTokens().then((ok) => {
        if (!ok) endSession("Your session has ended. Sign in again.");
      });
    }, wait);
  }

  /** Trades the refresh token for new tokens, keeping both (the old refresh token is spent). */
  function refreshTokens() {
    if (!session.refresh) return Promise.resolve(false);
    if (!session.refreshing) {
      const spent = session.refresh;
      session.refreshing = send("POST", "/api/accounts/token/refresh/", { refresh: spent }, null)
        .then((answer) => {
          if (answer.status !== 200 || !answer.body || !answer.body.access) return false;
          if (session.refresh !== spent) return false; // signed out meanwhile
          session.access = answer.body.access;
          if (answer.body.refresh) session.refresh = answer.body.refresh;
          if (claimsOf(session.access).is_staff === false) {
            endSession("This account is no longer staff.");
            return false;
          }
          scheduleRefresh();
          return true;
        })
        .finally(() => {
          session.refreshing = null;
        });
    }
    return session.refreshing;
  }

  /** One request to the API: `{status, ok, body}`; a network failure is status 0. */
  async function send(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      return { status: 0, ok: false, body: { detail: "The shop could not be reached." } };
    }
    let parsed = null;
    const text = await response.text();
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (_) {
        parsed = { detail: "The shop answered " + response.status + " with a body that is not JSON." };
      }
    }
    return { status: response.status, ok: response.ok, body: parsed };
  }

  /** A request as the signed-in member; after a 401 the tokens are refreshed once and it is
   *  sent again; a second 401 ends the session. */
  async function api(method, path, body) {
    if (session.refreshing) await session.refreshing;
    let answer = await send(method, path, body, session.access);
    if (answer.status === 401 && session.refresh) {
      if (await refreshTokens()) answer = await send(method, path, body, session.access);
    }
    if (answer.status === 401 && session.access) {
      endSession("Your session has ended. Sign in again.");
    }
    return answer;
  }

  /** The API's message for a failed answer: its `detail`, or every field's messages. */
  function messageOf(answer) {
    const body = answer.body;
    if (body && typeof body.detail === "string") return body.detail;
    if (body && typeof body === "object") {
      return Object.entries(body)
        .map(([field, messages]) => field + ": " + [].concat(messages).join(" "))
        .join("; ");
    }
    return "The shop answered " + answer.status + ".";
  }

  /** The path and query of a `next`/`previous` link, so the page only ever calls its origin. */
  function localPath(url) {
    if (!url) return null;
    const parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search;
  }

  // -------------------------------------------------------------------------------------------
  // Signing in and out
  // -------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  async function signIn(event) {
    event.preventDefault();
    const message = $("signin-message");
    message.textContent = "";
    const username = $("signin-username").value;
    const password = $("signin-password").value;
    const login = await send("POST", "/api/accounts/login/", { username, password }, null);
    if (login.status !== 200) {
      message.textContent = messageOf(login);
      return;
    }
    session.access = login.body.access;
    session.refresh = login.body.refresh;
    const profile = await api("GET", "/api/accounts/profile/");
    if (profile.status !== 200) {
      forget();
      message.textContent = messageOf(profile);
      return;
    }
    if (profile.body.is_staff !== true) {
      // Nothing of the console is shown, and the tokens just issued are given back.
      await send("POST", "/api/accounts/logout/", { refresh: session.refresh }, session.access);
      forget();
      message.textContent =
        "This account is not staff. The console is for the shop's staff only.";
      return;
    }
    $("signin-password").value = "";
    session.user = profile.body;
    scheduleRefresh();
    $("whoami").textContent = "Signed in as " + session.user.username;
    $("signin").hidden = true;
    $("console").hidden = false;
    if (!location.hash || location.hash === "#" || location.hash === "#/") {
      location.hash = "#/products";
    } else {
      render();
    }
  }

  /** Drops the tokens and whatever the console showed. */
  function forget() {
    clearTimeout(session.timer);
    session.access = null;
    session.refresh = null;
    session.user = null;
    $("view").replaceChildren();
    $("whoami").textContent = "";
    $("flash").textContent = "";
  }

  /** Back to the sign-in form with `why`. */
  function endSession(why) {
    if (!session.access && !session.refresh) return;
    forget();
    $("console").hidden = true;
    $("signin").hidden = false;
    $("signin-message").textContent = why;
  }

  async function signOut() {
    if (session.access) {
      await send("POST", "/api/accounts/logout/", { refresh: session.refresh }, session.access);
    }
    endSession("Signed out.");
  }

  // -------------------------------------------------------------------------------------------
  // Building the page
  // -------------------------------------------------------------------------------------------

  /** An element with attributes (`testid` is `data-testid`, `on...` a listener) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "testid") el.dataset.testid = value;
      else if (key === "class") el.className = value;
      else if (key === "data") Object.assign(el.dataset, value);
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function flash(text, kind) {
    const el = $("flash");
    el.textContent = text || "";
    el.className = "message" + (kind ? " " + kind : "");
  }

  /** `2026-12-06T08:01:02.123Z` as `2026-12-06 08:01:02 UTC`. */
  function when(at) {
    if (!at) return "";
    return String(at).replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, " UTC");
  }

  /** The route: `#/orders?status=shipped` is `{name: "orders", params}`. */
  function currentRoute() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [name, query] = hash.split("?");
    return { name: name || "products", params: new URLSearchParams(query || "") };
  }

  function go(name, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") query.set(key, value);
    }
    const text = query.toString();
    location.hash = "#/" + name + (text ? "?" + text : "");
  }

  /** Previous and next buttons, and where the list is. */
  function pager(answer, page, pageSize, onPage, noun) {
    const count = answer.body.count;
    const pages = Math.max(1, Math.ceil(count / pageSize));
    return h(
      "div",
      { class: "pager" },
      h("button", { type: "button", testid: "pager-previous", disabled: !answer.body.previous,
        onclick: () => onPage(page - 1) }, "‹ Previous"),
      h("span", { testid: "pager-info" }, "Page " + page + " of " + pages + " · " + count + " " + noun),
      h("button", { type: "button", testid: "pager-next", disabled: !answer.body.next,
        onclick: () => onPage(page + 1) }, "Next ›"),
    );
  }

  function searchForm(testid, value, onSearch, placeholder) {
    const input = h("input", { type: "search", name: "search", testid: testid + "-input",
      placeholder, value: value || "" });
    return h(
      "form",
      { class: "search", testid, onsubmit: (event) => {
        event.preventDefault();
        onSearch(input.value.trim());
      } },
      input,
      h("button", { type: "submit", testid: testid + "-submit" }, "Search"),
    );
  }

  // Each render takes a ticket; an older render that finishes late does not draw.
  let ticket = 0;

  // The view says when it is being drawn (`aria-busy`) and which route it shows
  // (`data-route`), for assistive technology and for the browser test alike.
  async function render() {
    if (!session.user) return;
    const mine = ++ticket;
    const route = currentRoute();
    const frame = $("view");
    frame.setAttribute("aria-busy", "true");
    const views = { products, orders, customers, history };
    const view = views[route.name];
    if (!view) {
      go("products");
      return;
    }
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("current", link.getAttribute("href") === "#/" + route.name);
    }
    const content = await view(route.params);
    if (mine !== ticket || !session.user) return;
    frame.replaceChildren(content);
    frame.dataset.route = location.hash;
    frame.setAttribute("aria-busy", "false");
  }

  // -------------------------------------------------------------------------------------------
  // Products
  // -------------------------------------------------------------------------------------------

  const PRODUCT_FIELDS = ["name", "description", "price", "stock"];
  const PRODUCT_SORTS = [["name", "Name"], ["price", "Price"], ["stock", "Stock"], ["created_at", "Created"]];
  const PAGE_SIZE = 20;

  async function products(params) {
    const page = Number(params.get("page")) || 1;
    const search = params.get("search") || "";
    const ordering = params.get("ordering") || "";
    const state = { page, search, ordering };
    const query = new URLSearchParams({ page, page_size: PAGE_SIZE });
    if (search) query.set("search", search);
    if (ordering) query.set("ordering", ordering);
    const answer = await api("GET", "/api/products/?" + query);

    const editor = h("div", { class: "editor", testid: "product-editor" });
    const header = h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "Products"),
      searchForm("product-search", search, (text) => go("products", { search: text, ordering }),
        "Name or description"),
      h("button", { type: "button", testid: "product-new",
        onclick: () => editor.replaceChildren(productForm(null, editor)) }, "New product"),
    );
    if (!answer.ok) {
      return h("section", {}, header, editor,
        h("p", { class: "message error", testid: "products-error" }, "Could not list products: " + messageOf(answer)));
    }

    const sortHeader = ([field, label]) => {
      const mark = ordering === field ? " ▲" : ordering === "-" + field ? " ▼" : "";
      const next = ordering === field ? "-" + field : field;
      return h("th", {}, h("button", { type: "button", class: "sort", testid: "sort-" + field,
        onclick: () => go("products", { search, ordering: next }) }, label + mark));
    };
    const rows = answer.body.results.map((product) => productRow(product, editor, state));
    return h(
      "section",
      {},
      header,
      editor,
      h(
        "table",
        { testid: "products-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "ID"), sortHeader(PRODUCT_SORTS[0]), h("th", {}, "Description"),
          PRODUCT_SORTS.slice(1).map(sortHeader), h("th", {}, ""))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, testid: "products-empty" }, "No products."))),
      ),
      pager(answer, page, PAGE_SIZE, (to) => go("products", { page: to, search, ordering }), "products"),
    );
  }

  function productRow(product, editor, state) {
    const actions = h("td", { class: "actions" });
    const row = h(
      "tr",
      { testid: "product-row", data: { id: product.id } },
      h("td", { testid: "product-id" }, product.id),
      h("td", { testid: "product-name" }, product.name),
      h("td", { class: "description", testid: "product-description" }, product.description),
      h("td", { class: "number", testid: "product-price" }, product.price),
      h("td", { class: "number", testid: "product-stock" }, product.stock),
      h("td", { testid: "product-created" }, when(product.created_at)),
      actions,
    );
    const normal = () => actions.replaceChildren(
      h("button", { type: "button", testid: "product-edit",
        onclick: () => editor.replaceChildren(productForm(product, editor)) }, "Edit"),
      h("button", { type: "button", class: "danger", testid: "product-delete", onclick: askToConfirm }, "Delete"),
      h("a", { href: "#/history?service=products&object=" + product.id, testid: "product-history" }, "History"),
    );
    // Deleting takes a second, explicit click.
    function askToConfirm() {
      actions.replaceChildren(
        h("span", { class: "confirm" }, "Delete “" + product.name + "”?"),
        h("button", { type: "button", class: "danger", testid: "product-delete-confirm", onclick: remove }, "Confirm delete"),
        h("button", { type: "button", testid: "product-delete-keep", onclick: normal }, "Keep"),
      );
    }
    async function remove() {
      const answer = await api("DELETE", "/api/products/" + product.id + "/");
      if (answer.status === 204) {
        flash("Deleted product #" + product.id + " “" + product.name + "”.", "ok");
        render();
      } else {
        normal();
        actions.append(h("p", { class: "message error", testid: "product-message" }, messageOf(answer)));
      }
    }
    normal();
    return row;
  }

  /** The form to create (`product` null) or edit a product; the API's field errors are shown
   *  beside their fields, word for word. */
  function productForm(product, editor) {
    const inputs = {
      name: h("input", { id: "product-name", name: "name", testid: "field-name", value: product ? product.name : "" }),
      description: h("textarea", { id: "product-description", name: "description", testid: "field-description", rows: 3 },
        product ? product.description : ""),
      price: h("input", { id: "product-price", name: "price", testid: "field-price", inputmode: "decimal",
        value: product ? product.price : "" }),
      stock: h("input", { id: "product-stock", name: "stock", testid: "field-stock", inputmode: "numeric",
        value: product ? product.stock : "" }),
    };
    const errors = {};
    const labels = { name: "Name", description: "Description", price: "Price", stock: "Stock" };
    const fields = PRODUCT_FIELDS.map((field) => {
      errors[field] = h("p", { class: "field-error", testid: "error-" + field, role: "alert" });
      return h("div", { class: "field" }, h("label", { for: "product-" + field }, labels[field]), inputs[field], errors[field]);
    });
    const formError = h("p", { class: "message error", testid: "form-error", role: "alert" });

    async function save(event) {
      event.preventDefault();
      for (const field of PRODUCT_FIELDS) errors[field].textContent = "";
      formError.textContent = "";
      const body = {
        name: inputs.name.value,
        description: inputs.description.value,
        price: inputs.price.value.trim(),
      };
      // A whole number goes as a number; anything else as typed, for the API to judge.
      const stock = inputs.stock.value.trim();
      if (stock !== "" || product) body.stock = /^-?\d+$/.test(stock) ? Number(stock) : stock;
      const answer = product
        ? await api("PATCH", "/api/products/" + product.id + "/", body)
        : await api("POST", "/api/products/", body);
      if (answer.ok) {
        editor.replaceChildren();
        flash((product ? "Saved product #" : "Created product #") + answer.body.id + " “" + answer.body.name + "”.", "ok");
        render();
        return;
      }
      if (answer.status === 400 && answer.body && typeof answer.body.detail !== "string") {
        const others = [];
        for (const [field, messages] of Object.entries(answer.body)) {
          const text = [].concat(messages).join(" ");
          if (errors[field]) errors[field].textContent = text;
          else others.push(field === "non_field_errors" ? text : field + ": " + text);
        }
        formError.textContent = others.join(" ");
      } else {
        formError.textContent = messageOf(answer);
      }
    }

    return h(
      "form",
      { class: "product-form", testid: "product-form", novalidate: true, onsubmit: save },
      h("h3", {}, product ? "Edit product #" + product.id : "New product"),
      formError,
      fields,
      h("div", { class: "buttons" },
        h("button", { type: "submit", testid: "product-save" }, product ? "Save" : "Create"),
        h("button", { type: "button", testid: "product-cancel", onclick: () => editor.replaceChildren() }, "Cancel")),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Orders
  // -------------------------------------------------------------------------------------------

  const STATUSES = ["pending", "processing", "shipped", "delivered", "cancelled"];
  /** The steps staff may take from each status (API.md: one step at a time; cancel from
   *  pending or processing). */
  const NEXT_STEPS = {
    pending: ["processing", "cancel"],
    processing: ["shipped", "cancel"],
    shipped: ["delivered"],
    delivered: [],
    cancelled: [],
  };

  /** Usernames by user id, read once per session from the staff users API. */
  const usernames = new Map();

  async function usernameOf(id) {
    if (!usernames.has(id)) {
      usernames.set(id, api("GET", "/api/accounts/users/" + id + "/").then(
        (answer) => (answer.ok && answer.body.username) || null));
    }
    return usernames.get(id);
  }

  async function orders(params) {
    const page = Number(params.get("page")) || 1;
    const status = params.get("status") || "";
    const user = params.get("user") || "";
    const select = h("select", { testid: "order-status-filter", name: "status",
      onchange: () => go("orders", { status: select.value, user }) },
    h("option", { value: "" }, "every status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
    const header = h("div", { class: "toolbar" }, h("h2", {}, "Orders"),
      h("label", {}, "Status ", select));

    let list;
    let pagerEl = null;
    let banner = null;
    if (user) {
      // The API has no user filter: read every page (newest first) and keep this user's.
      list = [];
      let path = "/api/orders/?" + new URLSearchParams(status ? { status, page_size: 100 } : { page_size: 100 });
      for (let pages = 0; path && pages < 50; pages++) {
        const answer = await api("GET", path);
        if (!answer.ok) return h("section", {}, header, h("p", { class: "message error", testid: "orders-error" }, "Could not list orders: " + messageOf(answer)));
        list.push(...answer.body.results.filter((o) => String(o.user_id) === user));
        path = localPath(answer.body.next);
      }
      banner = h("p", { class: "banner", testid: "orders-of-user" }, "Orders of user #" + user + " (" + list.length + ") · ",
        h("a", { href: "#/orders" + (status ? "?status=" + status : "") }, "all orders"));
    } else {
      const query = new URLSearchParams({ page, page_size: PAGE_SIZE });
      if (status) query.set("status", status);
      const answer = await api("GET", "/api/orders/?" + query);
      if (!answer.ok) return h("section", {}, header, h("p", { class: "message error", testid: "orders-error" }, "Could not list orders: " + messageOf(answer)));
      list = answer.body.results;
      pagerEl = pager(answer, page, PAGE_SIZE, (to) => go("orders", { page: to, status }), "orders");
    }
    const cards = list.map(orderCard);
    return h("section", {}, header, banner,
      h("div", { class: "orders", testid: "orders-list" }, cards.length ? cards : h("p", { testid: "orders-empty" }, "No orders.")),
      pagerEl);
  }

  function orderCard(order) {
    const card = h("article", { class: "order", testid: "order" });
    const customer = h("span", { testid: "order-customer" }, "user #" + order.user_id);
    usernameOf(order.user_id).then((name) => {
      if (name) customer.textContent = name + " (#" + order.user_id + ")";
    });
    const message = h("p", { class: "message", testid: "order-message", role: "status" });

    function draw(current, note, kind) {
      card.dataset.id = current.id;
      card.dataset.status = current.status;
      message.textContent = note || "";
      message.className = "message" + (kind ? " " + kind : "");
      const steps = NEXT_STEPS[current.status] || [];
      card.replaceChildren(
        h("header", {},
          h("h3", {}, "Order #" + current.id),
          h("span", { class: "status status-" + current.status, testid: "order-status" }, current.status),
          h("span", {}, "Customer ", customer, " · ",
            h("a", { href: "#/orders?user=" + current.user_id, testid: "order-customer-orders" }, "their orders")),
          h("span", {}, "Total ", h("strong", { testid: "order-total" }, current.total_amount)),
          h("span", { testid: "order-created" }, when(current.created_at))),
        h("p", { class: "address", testid: "order-address" }, "Ship to: " + current.shipping_address),
        h("table", { class: "lines" },
          h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Quantity"), h("th", {}, "Unit price"))),
          h("tbody", {}, current.items.map((item) => h("tr", { testid: "order-line", data: { product: item.product_id } },
            h("td", {}, item.product_name + " (#" + item.product_id + ")"),
            h("td", { class: "number" }, item.quantity),
            h("td", { class: "number" }, item.price))))),
        h("div", { class: "buttons" },
          steps.map((step) => h("button", {
            type: "button",
            class: step === "cancel" ? "danger" : "",
            testid: step === "cancel" ? "order-cancel" : "order-to-" + step,
            onclick: () => change(current, step),
          }, step === "cancel" ? "Cancel order" : "Mark " + step)),
          h("a", { href: "#/history?service=orders&object=" + current.id, testid: "order-history" }, "History")),
        message,
      );
    }

    async function change(current, step) {
      const answer = step === "cancel"
        ? await api("POST", "/api/orders/" + current.id + "/cancel/")
        : await api("POST", "/api/orders/" + current.id + "/status/", { status: step });
      if (answer.ok) draw(answer.body, "Order #" + current.id + " is now " + answer.body.status + ".", "ok");
      else draw(current, messageOf(answer), "error");
    }

    draw(order);
    return card;
  }

  // -------------------------------------------------------------------------------------------
  // Customers
  // -------------------------------------------------------------------------------------------

  async function customers(params) {
    const page = Number(params.get("page")) || 1;
    const search = params.get("search") || "";
    const query = new URLSearchParams({ page, page_size: PAGE_SIZE });
    if (search) query.set("search", search);
    const answer = await api("GET", "/api/accounts/users/?" + query);
    const header = h("div", { class: "toolbar" }, h("h2", {}, "Customers"),
      searchForm("customer-search", search, (text) => go("customers", { search: text }), "Username, email or name"));
    if (!answer.ok) {
      return h("section", {}, header, h("p", { class: "message error", testid: "customers-error" }, "Could not list users: " + messageOf(answer)));
    }
    const rows = answer.body.results.map(customerRow);
    return h("section", {}, header,
      h("table", { testid: "customers-table" },
        h("thead", {}, h("tr", {}, ["ID", "Username", "Email", "Name", "Staff", "Active", "Joined", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, testid: "customers-empty" }, "No users.")))),
      pager(answer, page, PAGE_SIZE, (to) => go("customers", { page: to, search }), "users"));
  }

  function customerRow(user) {
    const row = h("tr", { testid: "customer-row" });
    function draw(current, note, kind) {
      row.dataset.id = current.id;
      const self = session.user && current.id === session.user.id;
      row.replaceChildren(
        h("td", {}, current.id),
        h("td", { testid: "customer-username" }, current.username),
        h("td", { testid: "customer-email" }, current.email),
        h("td", {}, [current.first_name, current.last_name].filter(Boolean).join(" ")),
        h("td", { testid: "customer-staff" }, current.is_staff ? "yes" : "no"),
        h("td", { testid: "customer-active" }, current.is_active ? "yes" : "no"),
        h("td", {}, when(current.date_joined)),
        h("td", { class: "actions" },
          h("button", { type: "button", testid: "customer-toggle-staff", title: self ? "You cannot remove your own staff flag" : null,
            onclick: () => change(current, { is_staff: !current.is_staff }) }, current.is_staff ? "Remove staff" : "Make staff"),
          h("button", { type: "button", class: current.is_active ? "danger" : "", testid: "customer-toggle-active",
            onclick: () => change(current, { is_active: !current.is_active }) }, current.is_active ? "Deactivate" : "Activate"),
          h("a", { href: "#/orders?user=" + current.id, testid: "customer-orders" }, "Orders"),
          h("a", { href: "#/history?service=accounts&object=" + current.id, testid: "customer-history" }, "History"),
          h("p", { class: "message" + (kind ? " " + kind : ""), testid: "customer-message", role: "status" }, note || "")),
      );
    }
    async function change(current, patch) {
      const answer = await api("PATCH", "/api/accounts/users/" + current.id + "/", patch);
      if (answer.ok) {
        const what = "is_staff" in patch
          ? (answer.body.is_staff ? "is now staff" : "is no longer staff")
          : (answer.body.is_active ? "is active again" : "is deactivated");
        draw(answer.body, answer.body.username + " " + what + ".", "ok");
      } else {
        draw(current, messageOf(answer), "error");
      }
    }
    draw(user);
    return row;
  }

  // -------------------------------------------------------------------------------------------
  // History
  // -------------------------------------------------------------------------------------------

  /** The three services that keep a history, and what their objects are called. */
  const HISTORIES = { products: "product", orders: "order", accounts: "user" };

  /** One service's history, read a page at a time as the merged feed needs it. */
  function historySource(service, objectId) {
    const query = new URLSearchParams({ page_size: 50 });
    if (objectId) query.set("object_id", objectId);
    return { service, buffer: [], next: "/api/" + service + "/history/?" + query, error: null };
  }

  async function fill(source) {
    if (source.buffer.length || !source.next || source.error) return;
    const answer = await api("GET", source.next);
    if (!answer.ok) {
      source.error = messageOf(answer);
      return;
    }
    source.buffer.push(...answer.body.results);
    source.next = localPath(answer.body.next);
  }

  /** The next `count` entries of the feed, newest first across every source (each source is
   *  newest first already: a merge of sorted lists). */
  async function takeMerged(sources, count) {
    const taken = [];
    while (taken.length < count) {
      await Promise.all(sources.map(fill));
      const live = sources.filter((s) => s.buffer.length);
      if (!live.length) break;
      live.sort((a, b) => Date.parse(b.buffer[0].at) - Date.parse(a.buffer[0].at) || b.buffer[0].id - a.buffer[0].id);
      taken.push({ service: live[0].service, entry: live[0].buffer.shift() });
    }
    return taken;
  }

  function value(v) {
    if (v === null || v === undefined) return "—";
    if (v === "") return "(empty)";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  function historyRow({ service, entry }) {
    const changes = Object.entries(entry.changes || {}).map(([field, pair]) => {
      const [before, after] = Array.isArray(pair) ? pair : [undefined, pair];
      return h("li", { testid: "history-change", data: { field } },
        h("span", { class: "field-name" }, field), ": ", value(before), " → ", value(after));
    });
    return h("tr", { testid: "history-entry", data: { service, object: entry.object_id, action: entry.action } },
      h("td", { testid: "history-at" }, when(entry.at)),
      h("td", {}, h("a", { href: "#/history?service=" + service + "&object=" + entry.object_id, testid: "history-object" },
        HISTORIES[service] + " #" + entry.object_id)),
      h("td", { testid: "history-action" }, entry.action),
      h("td", {}, h("ul", { class: "changes", testid: "history-changes" }, changes)),
      h("td", { testid: "history-staff" }, entry.staff_username + " (#" + entry.staff_id + ")"));
  }

  async function history(params) {
    const service = params.get("service");
    const objectId = params.get("object");
    const single = service in HISTORIES && objectId;
    const sources = single ? [historySource(service, objectId)] : Object.keys(HISTORIES).map((s) => historySource(s));
    const title = single ? "History of " + HISTORIES[service] + " #" + objectId : "History";
    const body = h("tbody", {});
    const errors = h("div", { testid: "history-errors" });
    const more = h("button", { type: "button", testid: "history-more", onclick: () => load() }, "Older entries");

    async function load() {
      more.disabled = true;
      const entries = await takeMerged(sources, 50);
      body.append(...entries.map(historyRow));
      errors.replaceChildren(...sources.filter((s) => s.error).map((s) =>
        h("p", { class: "message error", testid: "history-source-error" }, s.service + " history: " + s.error)));
      const done = sources.every((s) => !s.buffer.length && (!s.next || s.error));
      more.hidden = done;
      more.disabled = false;
      if (!body.children.length && done) {
        body.append(h("tr", {}, h("td", { colspan: 5, testid: "history-empty" }, "No changes recorded.")));
      }
    }
    await load();
    return h("section", {},
      h("div", { class: "toolbar" }, h("h2", { testid: "history-title" }, title),
        single ? h("a", { href: "#/history", testid: "history-all" }, "every change") : null),
      errors,
      h("table", { testid: "history-table" },
        h("thead", {}, h("tr", {}, ["When", "What", "Action", "Changes", "Staff"].map((t) => h("th", {}, t)))),
        body),
      more);
  }

  // -------------------------------------------------------------------------------------------
  // Start
  // -------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    window.addEventListener("hashchange", () => {
      flash("");
      render();
    });
    $("signin").hidden = false;
    $("signin-username").focus();
  });
})();
