-- The top-level node is another node: it gets a database of its own on the same server.
CREATE DATABASE snode_top;
