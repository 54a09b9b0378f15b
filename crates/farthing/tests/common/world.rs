//! The one world builder of the integration tests: the assets, merchants (each with a
//! merchant key), fee plans, accounts and customers a test starts from, made over HTTP in a
//! fixed order (assets, merchants, fee plans, accounts, customers) so that ids and amounts
//! are the same on every run.

use serde_json::{json, Value};

use super::Server;

/// A merchant and its merchant-scoped API key.
pub struct Merchant {
    pub name: String,
    pub id: String,
    pub key: String,
}

/// A customer and its own token.
pub struct Customer {
    pub name: String,
    pub id: String,
    pub token: String,
}

/// A ledger account, named by the test that made it.
pub struct Account {
    pub name: String,
    pub id: String,
}

/// What a test starts from; made by [`World::builder`]. Holds ids and keys only (no server),
/// so it outlives a restart of the server.
pub struct World {
    /// The operator key the server printed on its first start.
    pub op: String,
    pub merchants: Vec<Merchant>,
    pub customers: Vec<Customer>,
    pub accounts: Vec<Account>,
}

impl World {
    pub fn builder(server: &Server) -> WorldBuilder<'_> {
        WorldBuilder {
            server,
            assets: Vec::new(),
            merchants: Vec::new(),
            fee_plans: Vec::new(),
            accounts: Vec::new(),
            customers: Vec::new(),
        }
    }

    /// The merchant made as `name`.
    pub fn merchant(&self, name: &str) -> &Merchant {
        self.merchants
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no merchant {name} in this world"))
    }

    /// The customer made as `name`.
    pub fn customer(&self, name: &str) -> &Customer {
        self.customers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no customer {name} in this world"))
    }

    /// The id of the account made as `name`.
    pub fn account(&self, name: &str) -> &str {
        let account = self.accounts.iter().find(|a| a.name == name);
        &account
            .unwrap_or_else(|| panic!("no account {name} in this world"))
            .id
    }

    /// The customer's available wallet balance in USD (read with its own token).
    pub fn wallet(&self, server: &Server, customer: &str) -> String {
        let c = self.customer(customer);
        server.with_key(&c.token).wallet(&c.id, "USD")
    }

    /// A merchant's available balance in USD (read with the operator key).
    pub fn merchant_balance(&self, server: &Server, merchant: &str) -> String {
        server.with_key(&self.op).merchant_balance(merchant, "USD")
    }

    /// Registers a card for the customer (with its own token); returns the payment method.
    pub fn card(&self, server: &Server, customer: &str, number: &str) -> String {
        let c = self.customer(customer);
        server.with_key(&c.token).add_card(&c.id, number)
    }

    /// Registers the card, then tops up the customer's USD wallet with it: status and body
    /// of the top-up.
    pub fn top_up(
        &self,
        server: &Server,
        customer: &str,
        card: &str,
        amount: &str,
    ) -> (u16, Value) {
        let payment_method = self.card(server, customer, card);
        self.top_up_with(server, customer, &payment_method, amount)
    }

    /// Tops up the customer's USD wallet with a payment method it registered: status and body
    /// of the top-up.
    pub fn top_up_with(
        &self,
        server: &Server,
        customer: &str,
        payment_method: &str,
        amount: &str,
    ) -> (u16, Value) {
        let c = self.customer(customer);
        server.with_key(&c.token).post(
            &format!("/v1/customers/{}/topups", c.id),
            json!({"amount": amount, "asset": "USD", "payment_method": payment_method}),
        )
    }

    /// Moves the test clock (`--test-clock`) on by `seconds`; returns the answer.
    pub fn advance(&self, server: &Server, seconds: u64) -> Value {
        server.with_key(&self.op).post_expect(
            "/v1/test_clock/advance",
            json!({ "seconds": seconds }),
            200,
        )
    }
}

/// Collects what the world holds; [`WorldBuilder::build`] makes it on the server.
pub struct WorldBuilder<'a> {
    server: &'a Server,
    assets: Vec<(String, u32)>,
    merchants: Vec<String>,
    /// Merchant name and fee plan body.
    fee_plans: Vec<(String, Value)>,
    /// Owning merchant's name, account name and flags.
    accounts: Vec<(String, String, Value)>,
    /// Name and monthly cap in USD, if any.
    customers: Vec<(String, Option<String>)>,
}

impl WorldBuilder<'_> {
    /// An asset with `scale` decimal places.
    pub fn asset(mut self, code: &str, scale: u32) -> Self {
        self.assets.push((code.into(), scale));
        self
    }

    /// A merchant, with a merchant-scoped API key.
    pub fn merchant(mut self, name: &str) -> Self {
        self.merchants.push(name.into());
        self
    }

    /// A fee plan for the merchant made as `merchant`, set by the operator.
    pub fn fee_plan(mut self, merchant: &str, plan: Value) -> Self {
        self.fee_plans.push((merchant.into(), plan));
        self
    }

    /// A USD account of the merchant made as `merchant`, made with its key.
    pub fn account(mut self, merchant: &str, name: &str, flags: Value) -> Self {
        self.accounts.push((merchant.into(), name.into(), flags));
        self
    }

    /// A customer of the first merchant (made with its key), without a monthly cap.
    pub fn customer(mut self, name: &str) -> Self {
        self.customers.push((name.into(), None));
        self
    }

    /// A customer of the first merchant with a monthly cap in USD.
    pub fn capped_customer(mut self, name: &str, monthly_cap: &str) -> Self {
        self.customers.push((name.into(), Some(monthly_cap.into())));
        self
    }

    pub fn build(self) -> World {
        let server = self.server;
        let op = server
            .operator_key
            .clone()
            .expect("operator key printed on first start");
        let operator = server.with_key(&op);
        for (code, scale) in &self.assets {
            operator.post_expect("/v1/assets", json!({"code": code, "scale": scale}), 201);
        }
        let merchants: Vec<Merchant> = self
            .merchants
            .iter()
            .map(|name| {
                let m = operator.post_expect("/v1/merchants", json!({"name": name}), 201);
                let id = m["id"].as_str().unwrap().to_string();
                let k = operator.post_expect(
                    "/v1/api_keys",
                    json!({"scope": "merchant", "merchant": id}),
                    201,
                );
                let key = k["secret"].as_str().unwrap().to_string();
                Merchant {
                    name: name.clone(),
                    id,
                    key,
                }
            })
            .collect();
        let mut world = World {
            op: op.clone(),
            merchants,
            customers: Vec::new(),
            accounts: Vec::new(),
        };
        for (merchant, plan) in self.fee_plans {
            let id = &world.merchant(&merchant).id;
            operator.post_expect(&format!("/v1/merchants/{id}/fee_plan"), plan, 200);
        }
        for (merchant, name, flags) in self.accounts {
            let key = &world.merchant(&merchant).key;
            let a = server.with_key(key).post_expect(
                "/v1/accounts",
                json!({"asset": "USD", "flags": flags}),
                201,
            );
            let id = a["id"].as_str().unwrap().to_string();
            world.accounts.push(Account { name, id });
        }
        for (name, cap) in self.customers {
            let key = &world
                .merchants
                .first()
                .expect("a merchant for the customer")
                .key;
            let body = match cap {
                Some(cap) => json!({"name": name, "monthly_cap": {"amount": cap, "asset": "USD"}}),
                None => json!({"name": name}),
            };
            let c = server.with_key(key).post_expect("/v1/customers", body, 201);
            let (id, token) = (c["id"].as_str().unwrap(), c["token"].as_str().unwrap());
            world.customers.push(Customer {
                name,
                id: id.to_string(),
                token: token.to_string(),
            });
        }
        world
    }
}
