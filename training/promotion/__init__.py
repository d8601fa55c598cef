"""The promotion model: coupon uplift on 10-week profit per customer; the policy offers the coupon that pays."""
