# frozen_string_literal: true

require_relative 'test_helper'
require 'net/http'
require 'uri'

# transport: a Ruby proc carries every request instead of libcurl.
class TestTransport < LibPostHogTest
  def forward(req)
    uri = URI(req[:url])
    http = Net::HTTP.new(uri.host, uri.port)
    http.read_timeout = req[:timeout]
    klass = req[:method] == 'GET' ? Net::HTTP::Get : Net::HTTP::Post
    r = klass.new(uri.request_uri)
    req[:headers].each do |h|
      k, v = h.split(': ', 2)
      r[k] = v
    end
    r.body = req[:body] if req[:body]
    resp = http.request(r)
    [resp.code.to_i, resp.body, resp['Retry-After'], resp['ETag']]
  end

  def test_transport_delivers_and_retries
    IngestServer.faults([{ status: 503 }])
    kinds = Queue.new
    c = client(capture_mode: 'v1', max_retries: 3, transport: lambda { |req|
      kinds << req[:kind]
      forward(req)
    })
    5.times { |i| c.capture(distinct_id: 'u', event: 'e', properties: { i: i }) }
    assert c.flush
    assert_equal 5, events.size
    assert_equal 2, IngestServer.summary['requests']
    assert_equal 'capture', kinds.pop
  end

  def test_raising_transport_is_retried
    calls = 0
    c = client(max_retries: 3, transport: lambda { |req|
      calls += 1
      raise IOError, 'broker down' if calls == 1

      forward(req)
    })
    c.capture(distinct_id: 'u', event: 'e')
    assert c.flush
    assert_equal 1, events.size
    assert_equal 2, calls
  end
end
