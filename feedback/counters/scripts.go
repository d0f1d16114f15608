package counters

import "github.com/redis/go-redis/v9"

// A record is applied exactly once per key even though a redelivered
// batch, a client's retry and a spool redelivery all bring records again,
// and although on a Redis Cluster one event's keys live on several nodes
// (no script may touch them together):
//
//   - The event's dedupe mark (realtime.SeenKey) is set to "<partition>:
//     <offset>" of the first record that carried it. Another record with
//     the same event id is a duplicate and is skipped; the same record read
//     again (a batch re-read after a crash) goes on.
//   - Each key then applies the record once: the item counts and the user
//     history store the last offset per partition they applied, and a
//     record at or below it changes nothing. A crash half-way through an
//     event's keys is completed by the re-read without counting twice.
//
// Every script touches keys of one hash slot (see internal/realtime).

// itemScript applies the records of one chunk that touch one item to its
// decayed counts, in record order, so a popular item costs one call per
// chunk rather than one per impression. KEYS[1]: the item key. ARGV: 1
// half-life ms, 2 TTL ms, then per record a group of four: field (1
// impressions, 2 clicks), event time ms, partition, offset. The value is
// "<impressions> <clicks> <reference ms>" and then "<partition>:<offset>"
// tokens. A record at or below its partition's stored offset was applied
// before and is skipped. An event newer than the reference decays the
// counts to its time and adds 1; an older one (events arrive out of order
// across partitions) adds its own decayed weight. The reply has one
// character per group: 1 applied, 0 skipped.
var itemScript = redis.NewScript(itemLua)

// itemSHA is itemScript's SHA-1, which EVALSHA names.
var itemSHA = itemScript.Hash()

const itemLua = `
local hl = tonumber(ARGV[1])
local imp, clk, ref = 0, 0, nil
local offs, order = {}, {}
local v = redis.call('GET', KEYS[1])
if v then
  local i = 0
  for tok in string.gmatch(v, '%S+') do
    i = i + 1
    if i == 1 then imp = tonumber(tok) or 0
    elseif i == 2 then clk = tonumber(tok) or 0
    elseif i == 3 then ref = tonumber(tok)
    else
      local p, o = string.match(tok, '^(%d+):(%d+)$')
      if p and not offs[p] then offs[p] = tonumber(o); order[#order + 1] = p end
    end
  end
end
local applied, changed = {}, false
for g = 3, #ARGV, 4 do
  local t, p, o = tonumber(ARGV[g + 1]), ARGV[g + 2], tonumber(ARGV[g + 3])
  if offs[p] and offs[p] >= o then
    applied[#applied + 1] = '0'
  else
    if not offs[p] then order[#order + 1] = p end
    offs[p] = o
    if ref == nil then ref = t end
    local add = 1
    if t >= ref then
      local f = 2 ^ (-(t - ref) / hl)
      imp, clk, ref = imp * f, clk * f, t
    else
      add = 2 ^ (-(ref - t) / hl)
    end
    if ARGV[g] == '1' then imp = imp + add else clk = clk + add end
    applied[#applied + 1] = '1'
    changed = true
  end
end
if changed then
  local out = string.format('%.9g %.9g %.0f', imp, clk, ref)
  for _, q in ipairs(order) do out = out .. ' ' .. q .. ':' .. string.format('%.0f', offs[q]) end
  redis.call('SET', KEYS[1], out, 'PX', ARGV[2])
end
return table.concat(applied)`

// userScript pushes one record's item onto a user's history. KEYS: the
// history list and its offset key (one hash tag). ARGV: 1 item, 2 history
// length, 3 TTL ms, 4 partition, 5 offset.
var userScript = redis.NewScript(userLua)

const userLua = `
local last = redis.call('GET', KEYS[2])
if last then
  local p, o = string.match(last, '^(%d+):(%d+)$')
  if p == ARGV[4] and tonumber(o) >= tonumber(ARGV[5]) then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4] .. ':' .. ARGV[5], 'PX', ARGV[3])
return 1`
