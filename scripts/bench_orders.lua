-- The checkout load of scripts/bench.py --scenario orders, for `wrk -t16 -c16 -s THIS URL`:
-- each wrk thread is one buyer on one connection, so its requests never overlap, looping
--   POST /api/carts/add_item/ {"product_id": A, "quantity": 1}
--   POST /api/carts/add_item/ {"product_id": B, "quantity": 1}
--   POST /api/orders/         {"shipping_address": "1 Bench Road"}
-- with its own bearer token. BENCH_TOKENS holds the buyers' access tokens (comma-separated, one
-- per thread), BENCH_PRODUCTS "A,B". done() prints the line bench.py reads:
--   buyers N orders N failed N seconds S
-- orders: 201 answers to POST /api/orders/; failed: answers outside 2xx (socket errors are
-- wrk's own count).

local function split(text)
  local items = {}
  for item in string.gmatch(text or "", "[^,]+") do
    table.insert(items, item)
  end
  return items
end

local tokens = split(os.getenv("BENCH_TOKENS"))
local products = split(os.getenv("BENCH_PRODUCTS"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  local token = tokens[#threads]
  if token == nil then
    error("more wrk threads than BENCH_TOKENS")
  end
  thread:set("token", token)
  thread:set("product_a", products[1])
  thread:set("product_b", products[2])
end

function init(args)
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  local function add(product)
    return wrk.format("POST", "/api/carts/add_item/", headers,
      '{"product_id":' .. product .. ',"quantity":1}')
  end
  steps = {
    add(product_a),
    add(product_b),
    wrk.format("POST", "/api/orders/", headers, '{"shipping_address":"1 Bench Road"}'),
  }
  step = 0
  orders = 0
  failed = 0
end

-- The step advances on the answer, not here: wrk calls request() once more on the first thread
-- before the run (to check the script), which must not skip that buyer's first step.
function request()
  return steps[step + 1]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write(string.format("failed: step %d answered %d: %s\n", step + 1, status, string.sub(body or "", 1, 300)))
    end
  elseif step + 1 == #steps and status == 201 then
    orders = orders + 1
  end
  step = (step + 1) % #steps
end

function done(summary, latency, requests)
  local placed, refused = 0, 0
  for _, thread in ipairs(threads) do
    placed = placed + thread:get("orders")
    refused = refused + thread:get("failed")
  end
  io.write(string.format("buyers %d orders %d failed %d seconds %.6f\n",
    #threads, placed, refused, summary.duration / 1e6))
end
