-- The Lua row of scripts/bench (lua-nginx-module, content_by_lua_block): the same four
-- workloads, byte for byte, as the ngx-gateway app in examples/bench.
local cjson = require "cjson"
local md5 = ngx.md5
local concat = table.concat

local _M = {}

local HELLO = "Hello, World!\n"
local TITLE = "ngx-gateway bench"

-- cjson writes an object's keys in the Lua table's hash order, not in insertion order, so
-- each object is encoded with cjson and the fixed key order every row uses is kept by
-- writing the object's braces and keys here: {"id":..,"name":..,"price":..,"active":..,"tags":..}
local encode = cjson.encode
local TAGS = { "fast", "small" }

function _M.hello()
    ngx.header["Content-Type"] = "text/plain; charset=utf-8"
    ngx.header["Content-Length"] = #HELLO
    ngx.print(HELLO)
end

function _M.json()
    local items = {}
    for id = 1, 10 do
        items[id] = {
            id = id,
            name = "item " .. id,
            price = id + 0.25,
            active = id % 2 == 0,
            tags = TAGS,
        }
    end
    local parts = {}
    for i, item in ipairs(items) do
        parts[i] = concat({
            '{"id":', encode(item.id),
            ',"name":', encode(item.name),
            ',"price":', encode(item.price),
            ',"active":', encode(item.active),
            ',"tags":', encode(item.tags), '}',
        })
    end
    local body = "[" .. concat(parts, ",") .. "]"
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end

-- No template engine is packaged for lua-nginx-module in Debian 12 (lua-resty-template is
-- not), so the page of bench/templates/page.html is built by hand, as such apps do.
local ENTRIES = {}
for id = 1, 20 do
    ENTRIES[id] = { id = id, name = "Item " .. id, count = id * 3 }
end

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }
local function escape(text)
    return (string.gsub(text, "[&<>\"']", ESCAPES))
end

function _M.template()
    local args = ngx.req.get_uri_args()
    local name = args.name
    if type(name) ~= "string" then
        name = "World"
    end
    local out = {
        "<!doctype html>\n<html>\n<head><title>", escape(TITLE), "</title></head>\n<body>\n<h1>Hello, ",
        escape(name), "!</h1>\n<ul>\n",
    }
    local n = #out
    for _, entry in ipairs(ENTRIES) do
        out[n + 1] = '<li id="item-'
        out[n + 2] = entry.id
        out[n + 3] = '">'
        out[n + 4] = escape(entry.name)
        out[n + 5] = ": "
        out[n + 6] = entry.count
        out[n + 7] = "</li>\n"
        n = n + 7
    end
    out[n + 1] = "</ul>\n</body>\n</html>"
    local body = concat(out)
    ngx.header["Content-Type"] = "text/html; charset=utf-8"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end

function _M.echo()
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(405)
    end
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if not data then
        -- A body nginx spilled to a file (larger than client_body_buffer_size).
        local path = ngx.req.get_body_file()
        if path then
            local file = assert(io.open(path, "rb"))
            data = file:read("*a")
            file:close()
        else
            data = ""
        end
    end
    local body = #data .. " " .. md5(data) .. "\n"
    ngx.header["Content-Type"] = "text/plain; charset=utf-8"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end

return _M
