//! Webhook endpoints: registering, updating, rotating secrets, listing deliveries and redelivering.
