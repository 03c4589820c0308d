-- The lua-cosmo row of scripts/bench: the template workload's page rendered from a template,
-- bench/templates/page.cosmo, by lua-cosmo (Debian's LPeg-based template library), beside
-- the hand-built page of bench.lua. Cosmo inserts values as they are: `$esc{...}` escapes
-- each one per render, as the other rows' autoescaping does.
local cosmo = require "cosmo"

local _M = {}

local TITLE = "ngx-gateway bench"

local ENTRIES = {}
for id = 1, 20 do
    ENTRIES[id] = { id = id, name = "Item " .. id, count = id * 3 }
end

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }
local function esc(args)
    return (string.gsub(tostring(args[1]), "[&<>\"']", ESCAPES))
end

local function read_template(name)
    -- Beside this file: bench/lua/../templates/.
    local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
    local file = assert(io.open(here .. "../templates/" .. name, "rb"))
    local text = file:read("*a")
    file:close()
    return text
end

-- Compiled once, when the module is first required; each request fills it.
local page = cosmo.compile(read_template("page.cosmo"))

function _M.template()
    local name = ngx.req.get_uri_args().name
    if type(name) ~= "string" then
        name = "World"
    end
    local body = page({ title = TITLE, name = name, items = ENTRIES, esc = esc })
    ngx.header["Content-Type"] = "text/html; charset=utf-8"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end

return _M
