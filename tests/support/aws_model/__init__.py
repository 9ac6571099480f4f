"""A model of AWS where moto is not AWS: policy evaluation, propagation delays, the policy simulator, sessions."""
