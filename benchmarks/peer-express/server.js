// The design analytics.platform's API replaces, written from the production guide's description, so that `make bench`
// can measure both on the same Kafka in the same run (scripts/benchmark.py starts it; it is never deployed):
//   - express with express.json() as the body parser,
//   - the guide's authentication middleware (an x-api-key header checked against a known key),
//   - one kafkajs producer, producer.send({ acks: -1 }) of the request's events, 202 once Kafka acknowledged.
// Like the guide's sketch it checks no event field, adds the server's metadata the platform's records carry
// (received_at, ip_address, api_key) and keys each record by session_id, as the platform's API does.
// Configuration from the environment: PEER_PORT, PEER_API_KEY, PEER_KAFKA_BOOTSTRAP, PEER_KAFKA_USERNAME,
// PEER_KAFKA_PASSWORD, PEER_KAFKA_CA_FILE, PEER_KAFKA_TOPIC.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const express = require('express');
const { Kafka, logLevel } = require('kafkajs');

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const topic = process.env.PEER_KAFKA_TOPIC || 'analytics-events';
const apiKey = Buffer.from(env('PEER_API_KEY'));
const kafka = new Kafka({
  clientId: 'analytics-api-peer',
  brokers: env('PEER_KAFKA_BOOTSTRAP').split(','),
  ssl: { ca: [fs.readFileSync(env('PEER_KAFKA_CA_FILE'), 'utf8')] },
  sasl: { mechanism: 'scram-sha-512', username: env('PEER_KAFKA_USERNAME'), password: env('PEER_KAFKA_PASSWORD') },
  logLevel: logLevel.WARN,
});
const producer = kafka.producer();

function isValidApiKey(key) {
  const given = Buffer.from(key);
  return given.length === apiKey.length && crypto.timingSafeEqual(given, apiKey);
}

const authenticate = (req, res, next) => {
  const key = req.headers['x-api-key'];
  if (!key || !isValidApiKey(key)) {
    return res.status(401).json({ error: 'Unauthorized' });
  }
  next();
};

function message(event, req) {
  const record = {
    ...event,
    event_id: event.event_id || crypto.randomUUID(),
    timestamp: event.timestamp || new Date().toISOString(),
    received_at: new Date().toISOString(),
    metadata: { ip_address: req.ip, api_key: 'peer' },
  };
  return { key: record.session_id || record.event_id, value: JSON.stringify(record) };
}

const app = express();
app.use(express.json({ limit: '4mb' }));

app.post('/analytics', authenticate, async (req, res) => {
  try {
    await producer.send({ topic, acks: -1, messages: [message(req.body, req)] });
    res.status(202).json({ status: 'accepted' });
  } catch (e) {
    res.status(503).json({ error: 'Kafka unavailable' });
  }
});

app.post('/analytics/batch', authenticate, async (req, res) => {
  const events = req.body && req.body.events;
  if (!Array.isArray(events) || events.length === 0) {
    return res.status(422).json({ error: 'events: expected a non-empty list' });
  }
  try {
    await producer.send({ topic, acks: -1, messages: events.map((e) => message(e, req)) });
    res.status(202).json({ status: 'accepted', count: events.length });
  } catch (e) {
    res.status(503).json({ error: 'Kafka unavailable' });
  }
});

app.get('/ready', (req, res) => res.json({ ready: true }));

producer.connect().then(() => {
  const port = Number(env('PEER_PORT'));
  app.listen(port, '127.0.0.1', () => console.log(`peer listening on ${port}`));
}, (e) => {
  console.error(`peer: Kafka: ${e.message}`);
  process.exit(1);
});
