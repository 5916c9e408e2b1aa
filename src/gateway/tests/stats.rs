// stats tests
