/** The fault suite kills and freezes the real RabbitMQ and MariaDB: it runs alone, in band. */
const base = require('./jest.config.js');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/faults'],
  testPathIgnorePatterns: [],
  testTimeout: 240_000,
  maxWorkers: 1,
};
