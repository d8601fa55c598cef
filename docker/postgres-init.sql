-- The databases of the stack, created once when the PostgreSQL volume is first initialized.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE storefront_feast;
